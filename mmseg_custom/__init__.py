"""InternViT, its heads and segmentors in mmsegmentation 1.x's registries; import via
``custom_imports = dict(imports=['mmseg_custom'], allow_failed_imports=False)``."""
import mmengine_custom  # noqa: F401  (compatibility workarounds before any runner; optimizer constructors)

from .models import BatchedSlideEncoderDecoder, InternViTAdapter, InternViTBackbone, LinearProbeHead

__all__ = ['BatchedSlideEncoderDecoder', 'InternViTAdapter', 'InternViTBackbone', 'LinearProbeHead']
