from .detector import InternViTMaskRCNN
from .fp32_boxes import FP32BoxRoIHead, FP32BoxRPNHead, FP32RoIExtractor
from .necks import SimpleFeaturePyramid

__all__ = ['FP32BoxRPNHead', 'FP32BoxRoIHead', 'FP32RoIExtractor', 'InternViTMaskRCNN', 'SimpleFeaturePyramid']
