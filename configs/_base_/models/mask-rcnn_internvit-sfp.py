# mask-rcnn_internvit.py with ViTDet's own simple feature pyramid as the neck (detectron2's
# SimpleFeaturePyramid, mmdet's ViTDet SimpleFPN) in place of the published recipe's simple FPN + mmdet
# FPN: the last block's map at stride 16 -> strides 4 / 8 / 16 / 32 with halved channels on the way up,
# 1x1 + 3x3 convs with LayerNorms to 256 channels per level, and a max-pooled stride 64.
_base_ = ['./mask-rcnn_internvit.py']
model = dict(
    backbone=dict(with_fpn=False),
    neck=dict(_delete_=True, type='SimpleFeaturePyramid', in_channels=3200, out_channels=256, num_outs=5))
