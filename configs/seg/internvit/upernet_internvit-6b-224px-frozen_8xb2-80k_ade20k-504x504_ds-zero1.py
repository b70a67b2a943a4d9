# Head tuning of upernet_internvit-6b-224px-frozen_8xb2-80k_ade20k-504x504.py (mIoU 54.9 published)
# under DeepSpeed ZeRO-1: the frozen backbone in bf16, the FPN and UperNet in fp32 with a ZeRO-sharded
# fp32 AdamW. ZeRO-2 and 3: the _ds-zero2 and _ds-zero3 variants.
_base_ = ['./upernet_internvit-6b-224px-frozen_8xb2-80k_ade20k-504x504.py', '../../_base_/strategies/deepspeed_zero1.py']
optim_wrapper = dict(
    _delete_=True,
    type='DeepSpeedOptimWrapper',
    optimizer=dict(type='AdamW', lr=4e-5, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=1.0))
