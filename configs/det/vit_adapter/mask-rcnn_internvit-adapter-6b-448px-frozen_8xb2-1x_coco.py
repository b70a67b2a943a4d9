# mask-rcnn_internvit-adapter-6b-224px-frozen_8xb2-1x_coco.py for InternViT-6B-448px (45 blocks, 32x32 position
# grid): no published number.
_base_ = ['./mask-rcnn_internvit-adapter-6b-224px-frozen_8xb2-1x_coco.py']
model = dict(backbone=dict(arch='internvit-6b-448px-p16',
                           interaction_indexes=[[0, 10], [11, 21], [22, 32], [33, 44]],
                           pretrained='pretrained/InternViT-6B-448px-V1-5'))
