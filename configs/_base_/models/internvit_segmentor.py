# The segmentor shared by every InternViT recipe: batched slide inference (504 / 322), ImageNet
# normalisation, SyncBN in the heads (plain BN when not distributed). Leaves set backbone and heads.
# The position embedding is held at the 504 crop's 36 x 36 grid (img_size=504), as the original code
# held it and its released segmentors store it: the pretrained one is resampled once on load.
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
    backbone=dict(type='InternViT', arch='internvit-6b-224px', img_size=504, drop_path_rate=0.0, with_cp=False,
                  pretrained=None),
    train_cfg=dict(),
    test_cfg=dict(mode='slide', crop_size=(504, 504), stride=(322, 322), crop_batch_size=8))
