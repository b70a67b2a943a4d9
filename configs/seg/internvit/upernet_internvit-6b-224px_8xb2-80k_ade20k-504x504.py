# Full tuning: InternViT-6B-224px + simple FPN + UperNet (1536 ch, aux FCN 0.4) on ADE20K, single-scale
# mIoU 58.9 published (InternVL, CVPR 2024). Layer decay 0.95, drop path 0.4, wd 0.05, activation
# checkpointing, 80k iterations at batch 16 (8 GPUs x 2). As the reference ran it: DeepSpeed ZeRO-1,
# everything in bf16 (weights, activations, the heads' BatchNorm buffers too), fp32 master weights in
# the sharded optimizer. Planner (tools/analysis/estimate_memory.py, 8 x 80 GiB): see the README table.
_base_ = ['../../_base_/models/upernet_internvit.py', '../../_base_/datasets/ade20k_504x504.py',
          '../../_base_/seg_runtime.py', '../../_base_/schedules/schedule_80k_adamw_deepspeed.py',
          '../../_base_/strategies/deepspeed_zero1.py']
model = dict(
    backbone=dict(arch='internvit-6b-224px', out_indices=[11, 23, 35, 47], drop_path_rate=0.4, with_cp=True,
                  pretrained='pretrained/InternViT-6B-224px'))
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.95))
strategy = dict(bf16=dict(enabled=True), inputs_to_half=['inputs'],
                config=dict(data_types=dict(buffer_dtype='bf16')))
