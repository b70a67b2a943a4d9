# schedule_80k_adamw.py for mmengine's FlexibleRunner + DeepSpeedStrategy: the same AdamW and layer-decay
# groups, handed to DeepSpeed as its client optimizer (gradient clipping is the strategy's).
_base_ = ['./schedule_80k_adamw.py']
optim_wrapper = dict(type='DeepSpeedOptimWrapper')
