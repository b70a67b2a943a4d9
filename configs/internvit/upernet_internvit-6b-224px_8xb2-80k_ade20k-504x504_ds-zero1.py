# Full tuning of upernet_internvit-6b-224px_8xb2-80k_ade20k-504x504.py (mIoU 58.9 published) with the
# backbone computing in bf16 (autocast, fp32 weights) and the FPN and heads in fp32, under DeepSpeed
# ZeRO-1 with a sharded fp32 optimizer.
_base_ = ['./upernet_internvit-6b-224px_8xb2-80k_ade20k-504x504.py', '../_base_/strategies/deepspeed_zero1.py']
model = dict(backbone=dict(backbone_dtype='bfloat16'))
optim_wrapper = dict(
    _delete_=True,
    type='DeepSpeedOptimWrapper',
    optimizer=dict(type='AdamW', lr=4e-5, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.95))
