# mmdet's 1x schedule (12 epochs, lr x0.1 after epochs 8 and 11, 500 warm-up iterations) with AdamW 1e-4,
# wd 0.05, through mmengine's FlexibleRunner + DeepSpeed (the optimizer and its layer-decay groups are
# DeepSpeed's client optimizer; gradient clipping is the strategy's). Layer decay 1.0 = none.
_base_ = ['mmdet::_base_/schedules/schedule_1x.py']
optim_wrapper = dict(
    _delete_=True,
    type='DeepSpeedOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=1.0))
# per-sample seeded augmentation: a resumed epoch draws what the uninterrupted run drew
# (internvl_mmlab/engine/loops.py)
train_cfg = dict(type='ResumableEpochBasedTrainLoop')
