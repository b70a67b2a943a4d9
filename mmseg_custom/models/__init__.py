from .backbones import InternViTBackbone
from .decode_heads import LinearProbeHead
from .segmentors import BatchedSlideEncoderDecoder

__all__ = ['BatchedSlideEncoderDecoder', 'InternViTBackbone', 'LinearProbeHead']
