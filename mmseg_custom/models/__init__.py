from .decode_heads import LinearProbeHead
from .segmentors import BatchedSegTTAModel, BatchedSlideEncoderDecoder

__all__ = ['BatchedSegTTAModel', 'BatchedSlideEncoderDecoder', 'LinearProbeHead']
