# The probing study on the CPU (`make demo-probe`): the tiny InternViT that `make demo` trains (width 96,
# 4 blocks), frozen, probed at every block x 2 learning rates x BN or not = 16 linear probes in one run on
# the embedded synthetic ADE20K-layout data. Same code and protocol as the InternViT-6B study
# (configs/seg/probing/), scaled to 2 CPU cores and a couple of minutes.
_base_ = ['../../_base_/models/probe-sweep_internvit.py', '../../_base_/datasets/synthetic-ade_112x112.py',
          '../../_base_/seg_runtime.py', '../../_base_/schedules/schedule_80k_probe-sweep.py']
crop_size = (112, 112)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
width = 96
blocks = [0, 1, 2, 3]
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=width, num_layers=4, num_heads=3, mlp_ratio=4.0, norm_type='rms', qk_norm=True,
                  qkv_bias=False, layer_scale_init=0.1, patch_size=14, img_size=112),
        img_size=None, out_indices=blocks, pretrained='work_dirs/demo/iter_500.pth'),
    decode_head=dict(in_channels=width, blocks=blocks, lrs=[1e-3, 4e-3], norm=[True, False],
                     norm_cfg=dict(type='BN', requires_grad=True)),
    test_cfg=dict(crop_size=crop_size, stride=(84, 84)))
val_evaluator = dict(type='ProbeSweepIoUMetric')
test_evaluator = val_evaluator
train_dataloader = dict(batch_size=4)
iters = 120
randomness = dict(seed=0)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=10),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=10, end=iters),
]
train_cfg = dict(max_iters=iters, val_interval=iters)
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=iters, max_keep_ckpts=1, save_best=None))
