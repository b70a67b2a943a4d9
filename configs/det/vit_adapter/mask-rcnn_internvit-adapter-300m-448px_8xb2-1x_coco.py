# mask-rcnn_internvit-adapter-6b-224px_8xb2-1x_coco.py for InternViT-300M-448px (24 blocks, width 1024,
# 32x32 position grid; 16 deformable-attention heads, 1024 / 16 = 64 channels a head): no published number.
_base_ = ['./mask-rcnn_internvit-adapter-6b-224px_8xb2-1x_coco.py']
model = dict(backbone=dict(arch='internvit-300m-448px-p16', interaction_indexes=[[0, 5], [6, 11], [12, 17], [18, 23]],
                           deform_num_heads=16,
                           pretrained='pretrained/InternViT-300M-448px'),
             neck=dict(in_channels=[1024] * 4))
