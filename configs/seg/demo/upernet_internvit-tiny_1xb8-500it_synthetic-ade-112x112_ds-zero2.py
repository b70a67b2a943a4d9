# The CPU demo under DeepSpeed ZeRO-2 through mmengine's FlexibleRunner, fp32 (add
# strategy.bf16.enabled=True strategy.inputs_to_half=[inputs] strategy.config.data_types.buffer_dtype=bf16
# for all-bf16). Runs as one process, or as two under tools/dist_train.sh CONFIG 2.
_base_ = ['./upernet_internvit-tiny_1xb8-500it_synthetic-ade-112x112.py', '../../_base_/strategies/deepspeed_zero2.py']
optim_wrapper = dict(
    _delete_=True,
    type='DeepSpeedOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.01),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=1.0))
