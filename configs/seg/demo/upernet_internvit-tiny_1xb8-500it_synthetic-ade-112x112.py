# The CPU demo (`make demo`): a tiny InternViT (width 96, 4 blocks) + simple FPN + UperNet trained from
# scratch on the embedded synthetic data in the ADE20K layout (mmseg_custom/datasets/synthetic_ade.py,
# written to data/synthetic_ade by tools/make_synthetic_ade.py), evaluated with mmseg's IoUMetric.
# Same code and protocol as the published recipes, scaled to 2 CPU cores and a few minutes.
_base_ = ['../../_base_/models/upernet_internvit.py', '../../_base_/datasets/synthetic-ade_112x112.py',
          '../../_base_/seg_runtime.py', '../../_base_/schedules/schedule_80k_adamw.py']
crop_size = (112, 112)
env_cfg = dict(dist_cfg=dict(backend='gloo'))  # a CPU demo: its process groups (DeepSpeed, 2 processes) use gloo
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
