from .backbones import InternViTAdapter, InternViTBackbone
from .decode_heads import LinearProbeHead
from .segmentors import BatchedSlideEncoderDecoder

__all__ = ['BatchedSlideEncoderDecoder', 'InternViTAdapter', 'InternViTBackbone', 'LinearProbeHead']
