# The CPU demo (`make demo`): a tiny InternViT (width 96, 4 blocks) + simple FPN + UperNet trained from
# scratch on the embedded synthetic data in the ADE20K layout (mmseg_custom/datasets/synthetic_ade.py,
# written to data/synthetic_ade by tools/make_synthetic_ade.py), evaluated with mmseg's IoUMetric.
# Same code and protocol as the published recipes, scaled to 2 CPU cores and a few minutes.
_base_ = ['../../_base_/models/upernet_internvit.py', '../../_base_/datasets/ade20k_504x504.py',
          '../../_base_/seg_runtime.py', '../../_base_/schedules/schedule_80k_adamw.py']
crop_size = (112, 112)
env_cfg = dict(dist_cfg=dict(backend='gloo'))  # a CPU demo: its process groups (DeepSpeed, 2 processes) use gloo
data_root = 'data/synthetic_ade'
width = 96
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=width, num_layers=4, num_heads=3, mlp_ratio=4.0, norm_type='rms', qk_norm=True,
                  qkv_bias=False, layer_scale_init=0.1, patch_size=14, img_size=112),
        img_size=None, out_indices=[0, 1, 2, 3]),
    decode_head=dict(in_channels=[width] * 4, channels=64, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=width, channels=32, norm_cfg=norm_cfg),
    test_cfg=dict(crop_size=crop_size, stride=(84, 84)))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(112, 112), ratio_range=(0.8, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(112, 112), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale=(int(112 * r), int(112 * r)), keep_ratio=True) for r in [0.75, 1.0, 1.5]],
        [dict(type='RandomFlip', prob=0.0, direction='horizontal'),
         dict(type='RandomFlip', prob=1.0, direction='horizontal')],
        [dict(type='LoadAnnotations', reduce_zero_label=True)],
        [dict(type='PackSegInputs')],
    ]),
]
train_dataloader = dict(batch_size=8, num_workers=1,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(num_workers=1, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
iters = 500
randomness = dict(seed=0)
optim_wrapper = dict(optimizer=dict(lr=1e-3, weight_decay=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=50, end=iters),
]
train_cfg = dict(max_iters=iters, val_interval=iters)
default_hooks = dict(logger=dict(interval=50),
                     checkpoint=dict(interval=iters, max_keep_ckpts=1, save_best=None))
