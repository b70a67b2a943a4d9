# Test config: the CPU demo under DeepSpeed ZeRO-2 (fp32) made deterministic, so that runs can be
# compared step by step: no random augmentation, no dropout, GroupNorm (independent of how the batch
# is split across processes), a loss recorder that averages the loss over all processes.
_base_ = ['../../../configs/seg/demo/upernet_internvit-tiny_1xb8-500it_synthetic-ade-112x112_ds-zero2.py']
custom_imports = dict(imports=['mmseg_custom', 'loss_recorder'], allow_failed_imports=False)
norm_cfg = dict(type='GN', num_groups=8, requires_grad=True)
model = dict(decode_head=dict(norm_cfg=norm_cfg, dropout_ratio=0.0),
             auxiliary_head=dict(norm_cfg=norm_cfg, dropout_ratio=0.0))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root='data/synthetic_ade', pipeline=train_pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False)
test_dataloader = val_dataloader
train_cfg = dict(max_iters=6, val_interval=6)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=3, max_keep_ckpts=3))
custom_hooks = [dict(type='StopOnNonFiniteLossHook'), dict(type='ResumeRNGHook'), dict(type='BroadcastBuffersHook'),
                dict(type='LossRecorderHook', path='losses.txt')]
