"""The segmentation layer: our segmentor, heads and datasets in mmsegmentation 1.x's registries (the
backbones are the OpenMMLab layer's, ``internvl_mmlab.models``, registered once for both tasks), and
the segmentation side of the analysis tools (``analysis``). Import via
``custom_imports = dict(imports=['mmseg_custom'], allow_failed_imports=False)``."""
import internvl_mmlab  # noqa: F401  (the backbones, engine and workarounds, registered before any runner)
from internvl_mmlab.models import InternViTAdapter, InternViTBackbone

from .models import BatchedSlideEncoderDecoder, LinearProbeHead

__all__ = ['BatchedSlideEncoderDecoder', 'InternViTAdapter', 'InternViTBackbone', 'LinearProbeHead']
