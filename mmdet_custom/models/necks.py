"""ViTDet's simple feature pyramid (``internvl.models.SimpleFeaturePyramid``) as an mmdet neck: the
backbone's one map (``with_fpn=False``, one out index) -> five levels of ``out_channels`` for the RPN
and RoI heads (strides 4 to 64 for patch 16)."""
from mmdet.registry import MODELS

from internvl.models import SimpleFeaturePyramid

MODELS.register_module(name='SimpleFeaturePyramid', module=SimpleFeaturePyramid)

__all__ = ['SimpleFeaturePyramid']
