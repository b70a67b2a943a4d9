# A probe sweep: K linear probes (BN + 1x1 conv, or the plain conv) on the tapped blocks of ONE frozen
# InternViT pass per batch, the grid blocks x lrs x weight_decays x norm (mmseg_custom/probing). Leaves
# set the grid and the backbone; the backbone's out_indices are the sweep's blocks.
_base_ = ['./internvit_segmentor.py']
model = dict(
    type='ProbeSweepSegmentor',
    backbone=dict(frozen=True),
    decode_head=dict(
        type='ProbeSweepHead',
        in_channels=3200,
        num_classes=150,
        blocks=[],
        lrs=[],
        norm_cfg={{_base_.norm_cfg}},
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)))
