"""Models shared by the segmentation and detection layers, registered by each in its own registry."""
from .intern_vit import InternViTBackbone
from .utils import cast_to_consumer
from .vit_adapter import InternViTAdapter

__all__ = ['InternViTAdapter', 'InternViTBackbone', 'cast_to_consumer']
