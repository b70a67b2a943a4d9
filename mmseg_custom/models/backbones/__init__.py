from .intern_vit import InternViTBackbone

__all__ = ['InternViTBackbone']
