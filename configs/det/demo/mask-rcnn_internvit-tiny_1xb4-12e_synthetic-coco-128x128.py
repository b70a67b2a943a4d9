# The CPU detection demo (`make demo-det`): a tiny InternViT (width 96, 4 blocks, patch 16, window 4 with
# two global blocks, no cls token) + simple FPN + Mask R-CNN trained from scratch on the embedded
# synthetic data in the COCO layout (mmdet_custom/datasets/synthetic_coco.py, written to
# data/synthetic_coco by tools/make_synthetic_coco.py), evaluated with mmdet's CocoMetric (bbox and
# segm AP). The published recipe's code and structure, scaled to 2 CPU cores and a few minutes.
_base_ = ['../../_base_/models/mask-rcnn_internvit.py', 'mmdet::_base_/datasets/coco_instance.py',
          '../../_base_/det_runtime.py', 'mmdet::_base_/schedules/schedule_1x.py']
env_cfg = dict(dist_cfg=dict(backend='gloo'))  # a CPU demo: its process groups use gloo
data_root = 'data/synthetic_coco/'
classes = ('disc', 'square', 'triangle', 'cross')  # mmdet_custom.datasets.CLASSES
metainfo = dict(classes=classes, palette=[(210, 60, 50), (50, 160, 70), (60, 100, 220), (230, 200, 40)])
width, channels, size = 96, 64, 128
model = dict(
    # fpn_norm BN, as the FPN's norm_cfg: trained from scratch, the published LayerNorm in the stride-4
    # branch keeps that level from learning in 400 iterations (bbox mAP 0.001 against 0.60 with BN, where
    # mmdet's default RoI levels pool the demo's 20-50 px objects; docs/benchmark_detection_necks.txt)
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=width, num_layers=4, num_heads=3, mlp_ratio=4.0, norm_type='rms',
                  qk_norm=True, qkv_bias=False, layer_scale_init=0.1, patch_size=16, img_size=size),
        out_indices=[3], window_size=4, global_attn_indexes=[1, 3], fpn_norm='BN'),
    neck=dict(in_channels=[width] * 4, out_channels=channels, norm_cfg=dict(type='BN')),  # BN: trained from scratch
    rpn_head=dict(in_channels=channels, feat_channels=channels,
                  anchor_generator=dict(scales=[4])),  # anchors of 16 to 256 pixels for objects of 20 to 50
    roi_head=dict(  # mmdet's RoI levels (finest_scale 56): the 20-50 px objects pool from stride 4
        bbox_roi_extractor=dict(out_channels=channels),
        bbox_head=dict(in_channels=channels, fc_out_channels=128, num_classes=len(classes)),
        mask_roi_extractor=dict(out_channels=channels),
        mask_head=dict(in_channels=channels, conv_out_channels=channels, num_convs=2, num_classes=len(classes))),
    # fewer proposals and samples than COCO's (a few objects per 128-pixel image)
    train_cfg=dict(rpn_proposal=dict(nms_pre=500, max_per_img=200), rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=200), rcnn=dict(max_per_img=20)))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomResize', scale=(size, size), ratio_range=(0.8, 1.25), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(size, size), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(batch_size=4, num_workers=1,
                        dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(num_workers=1, dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator
epochs = 12
randomness = dict(seed=0)
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.999), weight_decay=0.05),
                     clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', begin=0, end=epochs, by_epoch=True, milestones=[8, 11], gamma=0.1),
]
train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=epochs, val_interval=epochs)  # exact resume
default_hooks = dict(logger=dict(interval=25), checkpoint=dict(interval=epochs, max_keep_ckpts=1, save_best=None))
