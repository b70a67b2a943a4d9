# The linear probe's schedule (schedule_80k_adamw.py: AdamW, warm-up then poly, 80k iterations) for a probe
# sweep: one optimizer holding each probe's own parameter groups (its lr and weight decay from the grid; the
# optimizer's lr is unused) and clipping each probe's gradients on its own (mmseg_custom/probing/optim.py).
_base_ = ['./schedule_80k_adamw.py']
optim_wrapper = dict(
    _delete_=True,
    type='ProbeSweepOptimWrapper',
    constructor='ProbeSweepOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=4e-5, betas=(0.9, 0.999), weight_decay=0.0))
