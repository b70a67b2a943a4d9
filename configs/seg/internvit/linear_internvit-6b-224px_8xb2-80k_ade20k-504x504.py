# Few-shot protocol, 1/1 of the ADE20K training set: trainable InternViT-6B-224px + linear head on
# block 47, single-scale mIoU 57.2 published (InternVL, CVPR 2024). Layer decay 0.95, drop path 0.4,
# wd 0.05, activation checkpointing, 80k iterations (warm-up 1500) at batch 16 (8 GPUs x 2). Under
# DeepSpeed ZeRO-1 in bf16 (fp32 master weights in the sharded optimizer), as the full-tuning UperNet.
_base_ = ['../../_base_/models/linear_internvit.py', '../../_base_/datasets/ade20k_504x504.py',
          '../../_base_/seg_runtime.py', '../../_base_/schedules/schedule_80k_adamw_deepspeed.py',
          '../../_base_/strategies/deepspeed_zero1.py']
model = dict(
    backbone=dict(arch='internvit-6b-224px', out_indices=[47], drop_path_rate=0.4, with_cp=True,
                  pretrained='pretrained/InternViT-6B-224px'),
    decode_head=dict(in_channels=3200))
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.95))
strategy = dict(bf16=dict(enabled=True), inputs_to_half=['inputs'],
                config=dict(data_types=dict(buffer_dtype='bf16')))
