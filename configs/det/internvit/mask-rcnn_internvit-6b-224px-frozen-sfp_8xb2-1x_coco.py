# mask-rcnn_internvit-6b-224px-frozen_8xb2-1x_coco.py (the published recipe) with ViTDet's simple feature
# pyramid as the neck (models/mask-rcnn_internvit-sfp.py among the bases): no published number.
_base_ = ['../../_base_/models/mask-rcnn_internvit-sfp.py', 'mmdet::_base_/datasets/coco_instance.py',
          '../../_base_/det_runtime.py', '../../_base_/schedules/schedule_1x_adamw_deepspeed.py',
          '../../_base_/strategies/deepspeed_zero1_fp16.py']
model = dict(backbone=dict(frozen=True, backbone_dtype='float16', pretrained='pretrained/InternViT-6B-224px'))
