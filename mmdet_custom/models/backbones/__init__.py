"""The shared InternViT backbones (``mmengine_custom.models``) in mmdet's registry."""
from mmdet.registry import MODELS

from mmengine_custom.models import InternViTAdapter, InternViTBackbone

MODELS.register_module(name='InternViT', module=InternViTBackbone)
MODELS.register_module(name='InternViTAdapter', module=InternViTAdapter)

__all__ = ['InternViTAdapter', 'InternViTBackbone']
