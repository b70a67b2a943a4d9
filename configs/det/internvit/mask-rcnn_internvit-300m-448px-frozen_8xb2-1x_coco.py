# mask-rcnn_internvit-6b-224px-frozen_8xb2-1x_coco.py for InternViT-300M-448px (24 blocks, width 1024, 32x32
# position grid): no published number.
_base_ = ['./mask-rcnn_internvit-6b-224px-frozen_8xb2-1x_coco.py']
model = dict(backbone=dict(arch='internvit-300m-448px-p16', out_indices=[23], pretrained='pretrained/InternViT-300M-448px'),
             neck=dict(in_channels=[1024] * 4))
