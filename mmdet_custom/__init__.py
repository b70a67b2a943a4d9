"""InternViT and the ViT-Adapter in mmdetection 3.x's registries, Mask R-CNN with its box arithmetic in
fp32 (``InternViTMaskRCNN`` and the ``FP32Box*`` heads), ViTDet's ``SimpleFeaturePyramid`` neck, and the
synthetic COCO-layout data; import via ``custom_imports = dict(imports=['mmdet_custom'],
allow_failed_imports=False)``."""
import mmengine_custom  # noqa: F401  (compatibility workarounds before any runner; optimizer constructors)

from .datasets import write_synthetic_coco
from .models import (FP32BoxRoIHead, FP32BoxRPNHead, FP32RoIExtractor, InternViTAdapter, InternViTBackbone,
                     InternViTMaskRCNN)

__all__ = ['FP32BoxRPNHead', 'FP32BoxRoIHead', 'FP32RoIExtractor', 'InternViTAdapter', 'InternViTBackbone',
           'InternViTMaskRCNN', 'write_synthetic_coco']
