# The segmentor shared by every InternViT recipe: batched slide inference (504 / 322), ImageNet
# normalisation, SyncBN in the heads (plain BN when not distributed). Leaves set backbone and heads.
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(504, 504))
model = dict(
    type='BatchedSlideEncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(type='InternViT', arch='internvit-6b-224px', drop_path_rate=0.0, with_cp=False, pretrained=None),
    train_cfg=dict(),
    test_cfg=dict(mode='slide', crop_size=(504, 504), stride=(322, 322), crop_batch_size=8))
