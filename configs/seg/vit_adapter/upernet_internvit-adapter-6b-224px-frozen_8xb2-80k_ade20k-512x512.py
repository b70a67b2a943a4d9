# ViT-Adapter on a frozen InternViT-6B-224px + UperNet (1536 ch, aux FCN 0.4) on ADE20K, single-scale
# mIoU 58.1 published (InternVL, CVPR 2024). Patch 16, crop 512, slide inference 512 / 341; AdamW 4e-5,
# wd 0.05, layer decay 0.95, warm-up 1500 then poly, 80k iterations at batch 16 (8 GPUs x 2); DeepSpeed
# ZeRO-1 fp16 as the reference ran it, the frozen ViT stored in fp16.
_base_ = ['../../_base_/models/upernet_internvit-adapter.py', '../../_base_/datasets/ade20k_512x512.py',
          '../../_base_/seg_runtime.py', '../../_base_/schedules/schedule_80k_adamw_deepspeed.py',
          '../../_base_/strategies/deepspeed_zero1_fp16.py']
model = dict(backbone=dict(frozen=True, backbone_dtype='float16', pretrained='pretrained/InternViT-6B-224px'))
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.95))
