from .backbones import InternViTAdapter, InternViTBackbone

__all__ = ['InternViTAdapter', 'InternViTBackbone']
