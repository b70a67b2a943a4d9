# Linear head (BatchNorm + 1x1 conv) on one tapped block of InternViT.
_base_ = ['./internvit_segmentor.py']
model = dict(
    backbone=dict(out_indices=[47]),
    decode_head=dict(
        type='LinearProbeHead',
        in_channels=3200,
        in_index=0,
        num_classes=150,
        norm_cfg={{_base_.norm_cfg}},
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)))
