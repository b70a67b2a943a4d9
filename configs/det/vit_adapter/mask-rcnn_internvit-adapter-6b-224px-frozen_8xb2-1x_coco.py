# ViT-Adapter on a frozen InternViT-6B-224px, Mask R-CNN 1x on COCO 2017: no published number (the
# ViT-Adapter paper's Mask R-CNN 3x with DeiT-B gives 49.6 box / 43.6 mask AP). The adapter, FPN and
# heads train; AdamW 1e-4, wd 0.05, batch 16 (8 GPUs x 2), mmdet's 1333x800 pipeline (padded to 32);
# DeepSpeed ZeRO-1 fp16 as the reference trained its adapter, the frozen ViT stored in fp16.
_base_ = ['../../_base_/models/mask-rcnn_internvit-adapter.py', 'mmdet::_base_/datasets/coco_instance.py',
          '../../_base_/det_runtime.py', '../../_base_/schedules/schedule_1x_adamw_deepspeed.py',
          '../../_base_/strategies/deepspeed_zero1_fp16.py']
model = dict(backbone=dict(frozen=True, backbone_dtype='float16', pretrained='pretrained/InternViT-6B-224px'))
