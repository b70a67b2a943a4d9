# Full tuning of upernet_internvit-6b-224px_8xb2-80k_ade20k-504x504.py (mIoU 58.9 published) as the
# reference ran it: DeepSpeed ZeRO-1, everything in bf16 (weights, activations, the heads' BatchNorm
# buffers too), fp32 master weights in the sharded optimizer, activation checkpointing per block.
_base_ = ['./upernet_internvit-6b-224px_8xb2-80k_ade20k-504x504.py', '../_base_/strategies/deepspeed_zero1.py']
strategy = dict(bf16=dict(enabled=True), inputs_to_half=['inputs'],
                config=dict(data_types=dict(buffer_dtype='bf16')))
optim_wrapper = dict(
    _delete_=True,
    type='DeepSpeedOptimWrapper',
    optimizer=dict(type='AdamW', lr=4e-5, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.95))
