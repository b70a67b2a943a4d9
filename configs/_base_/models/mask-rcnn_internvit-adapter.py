# Mask R-CNN (mmdet's R50-FPN heads, boxes in fp32) on InternViT-6B-224px + ViT-Adapter: the adapter's four maps
# (strides 4 / 8 / 16 / 32, 3200 channels) into mmdet's FPN (256).
_base_ = ['./mask-rcnn_fp32-boxes.py', './internvit-adapter-6b-224px.py']
model = dict(backbone={{_base_.internvit_adapter}}, neck=dict(in_channels=[3200, 3200, 3200, 3200]))
