"""The detection layer: Mask R-CNN with its box arithmetic in fp32 (``InternViTMaskRCNN`` and the
``FP32Box*`` heads), ViTDet's ``SimpleFeaturePyramid`` neck and the synthetic COCO-layout data in
mmdetection 3.x's registries (the backbones are the OpenMMLab layer's, ``internvl_mmlab.models``,
registered once for both tasks), and the detection side of the analysis tools (``analysis``). Import
via ``custom_imports = dict(imports=['mmdet_custom'], allow_failed_imports=False)``."""
import internvl_mmlab  # noqa: F401  (the backbones, engine and workarounds, registered before any runner)
from internvl_mmlab.models import InternViTAdapter, InternViTBackbone

from .datasets import write_synthetic_coco
from .models import FP32BoxRoIHead, FP32BoxRPNHead, FP32RoIExtractor, InternViTMaskRCNN

__all__ = ['FP32BoxRPNHead', 'FP32BoxRoIHead', 'FP32RoIExtractor', 'InternViTAdapter', 'InternViTBackbone',
           'InternViTMaskRCNN', 'write_synthetic_coco']
