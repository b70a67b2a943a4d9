# Mask R-CNN (mmdet's R50-FPN heads, boxes in fp32) on InternViT-6B-224px as the published detection recipe built it:
# patch 16 (the 14-pixel kernel resized on load), a 16x16 position grid (img_size 256) interpolated to
# the input at run time, no cls token, windowed attention (window 16) in every block, the last block
# tapped and spread to strides 4 / 8 / 16 / 32 by the simple FPN, then mmdet's FPN to 256 channels.
# Leaves set pretrained, frozen / trained and the variant's arch preset (internvl/arch.py).
_base_ = ['./mask-rcnn_fp32-boxes.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='InternViT',
        arch='internvit-6b-224px-p16',
        out_indices=[47],
        with_fpn=True,
        window_size=16,
        global_attn_indexes=[],
        use_cls_token=False,
        drop_path_rate=0.0,
        with_cp=False,
        pretrained=None),
    neck=dict(in_channels=[3200, 3200, 3200, 3200]))
