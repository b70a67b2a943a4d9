from .backbones import InternViTBackbone

__all__ = ['InternViTBackbone']
