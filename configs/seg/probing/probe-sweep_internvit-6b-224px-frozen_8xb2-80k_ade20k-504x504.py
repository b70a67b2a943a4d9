# A probing study of a frozen InternViT-6B-224px on ADE20K in one run: 12 blocks (every 4th, 0 .. 44) x 5
# learning rates around the published 4e-5 x BN + 1x1 conv or the plain conv = 120 linear probes on one
# bf16 backbone pass per batch, each trained as the published linear probe is (80k iterations at batch 16,
# AdamW, no weight decay, warm-up then poly). Its probe b44_lr4e-05 IS the published one: single-scale
# mIoU 47.2 (InternVL, Chen et al. CVPR 2024, semantic segmentation linear probing), so the study
# reproduces that number inside the sweep. tools/analysis/probe_report.py WORK_DIR: the table and the plot.
_base_ = ['../../_base_/models/probe-sweep_internvit.py', '../../_base_/datasets/ade20k_504x504.py',
          '../../_base_/seg_runtime.py', '../../_base_/schedules/schedule_80k_probe-sweep.py']
blocks = [0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44]
model = dict(
    backbone=dict(arch='internvit-6b-224px', out_indices=blocks, backbone_dtype='bfloat16',
                  pretrained='pretrained/InternViT-6B-224px'),
    # checkpoint_loss: each probe's 504 x 504 x 150 logits are recomputed in the backward pass, not kept (~1 GB
    # per probe at batch 2, x 120)
    decode_head=dict(in_channels=3200, blocks=blocks, lrs=[1e-5, 2e-5, 4e-5, 8e-5, 1.6e-4], norm=[True, False],
                     checkpoint_loss=True))
val_evaluator = dict(type='ProbeSweepIoUMetric')
test_evaluator = val_evaluator
# tools/cache_features.py: a deterministic, fixed-size view of every image (the test resize, then a centre
# crop to the training crop), so probes can train from cached maps.
fixed_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='Resize', scale=(2016, 504), keep_ratio=True),
    dict(type='CenterCrop', crop_size=(504, 504)),
    dict(type='PackSegInputs'),
]
# the published single probe, marked on the report's plot
published_probe = dict(probe='b44_lr4e-05', mIoU=47.2, source='InternVL (CVPR 2024), linear probing, ADE20K')
