# Full fine-tuning of InternViT-6B-224px in the published detection recipe's Mask R-CNN 1x on COCO 2017:
# no published number. Layer-wise lr decay 0.95, drop path 0.4, activation checkpointing (the
# segmentation full-tuning settings); AdamW 1e-4, wd 0.05, batch 16 (8 GPUs x 2); DeepSpeed ZeRO-1 fp16.
_base_ = ['../../_base_/models/mask-rcnn_internvit.py', 'mmdet::_base_/datasets/coco_instance.py',
          '../../_base_/det_runtime.py', '../../_base_/schedules/schedule_1x_adamw_deepspeed.py',
          '../../_base_/strategies/deepspeed_zero1_fp16.py']
model = dict(backbone=dict(drop_path_rate=0.4, with_cp=True, pretrained='pretrained/InternViT-6B-224px'))
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.95))
