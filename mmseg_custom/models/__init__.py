from .decode_heads import LinearProbeHead
from .segmentors import BatchedSlideEncoderDecoder

__all__ = ['BatchedSlideEncoderDecoder', 'LinearProbeHead']
