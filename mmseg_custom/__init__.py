"""InternViT and its heads in mmsegmentation 1.x's registries; import via
``custom_imports = dict(imports=['mmseg_custom'], allow_failed_imports=False)``."""
import mmengine_custom  # noqa: F401  (the stack's compatibility workarounds, before any runner)

from .models import InternViTBackbone

__all__ = ['InternViTBackbone']
