# The published InternViT-6B detection recipe (InternVL-MMDetSeg): frozen InternViT-6B-224px, Mask R-CNN
# 1x on COCO 2017 - no published number (the release ships the recipe without an AP). Patch 16, window
# 16 in every block, no cls token, the last block into a simple FPN and mmdet's FPN (256); AdamW 1e-4,
# wd 0.05, batch 16 (8 GPUs x 2), mmdet's 1333x800 pipeline; DeepSpeed ZeRO-1 fp16, the frozen ViT
# stored in fp16 too.
_base_ = ['../../_base_/models/mask-rcnn_internvit.py', 'mmdet::_base_/datasets/coco_instance.py',
          '../../_base_/det_runtime.py', '../../_base_/schedules/schedule_1x_adamw_deepspeed.py',
          '../../_base_/strategies/deepspeed_zero1_fp16.py']
model = dict(backbone=dict(frozen=True, backbone_dtype='float16', pretrained='pretrained/InternViT-6B-224px'))
