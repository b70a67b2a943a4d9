# UperNet (mmseg's UPerHead, 1536 channels) over InternViT's simple FPN, with an auxiliary FCN head
# (weight 0.4) on the stride-14 level (in_index 2, the full-tuning recipe's; head tuning sets 1, stride 7).
_base_ = ['./internvit_segmentor.py']
model = dict(
    backbone=dict(out_indices=[11, 23, 35, 47], with_fpn=True),
    decode_head=dict(
        type='UPerHead',
        in_channels=[3200, 3200, 3200, 3200],
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=1536,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg={{_base_.norm_cfg}},
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=3200,
        in_index=2,
        channels=1536,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg={{_base_.norm_cfg}},
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)))
