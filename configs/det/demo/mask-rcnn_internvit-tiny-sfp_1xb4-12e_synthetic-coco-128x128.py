# The detection demo (mask-rcnn_internvit-tiny_1xb4-12e_synthetic-coco-128x128.py) with ViTDet's simple
# feature pyramid as the neck (SimpleFeaturePyramid, BN as the demo's neck) in place of the simple FPN +
# mmdet's FPN, for tools/analysis/benchmark_detection_necks.py.
_base_ = ['./mask-rcnn_internvit-tiny_1xb4-12e_synthetic-coco-128x128.py']
model = dict(backbone=dict(with_fpn=False),
             neck=dict(_delete_=True, type='SimpleFeaturePyramid', in_channels=96, out_channels=64, num_outs=5,
                       norm='BN'))
