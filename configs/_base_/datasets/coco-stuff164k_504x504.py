# COCO-Stuff-164k (171 classes, mmseg's COCOStuffDataset: *_labelTrainIds.png label maps, 255 ignored, no
# zero label to reduce) at the ADE20K protocol's sizes, as InternVL-MMDetSeg ran it: crop 504, train scale
# (2016, 504) x [0.5, 2.0]; test resize (2016, 504) keep ratio, then ResizeToMultiple(14); the same TTA.
# The loaders, sampler and evaluator are ADE20K's; the pipelines load labels as they are.
_base_ = ['./ade20k_504x504.py']
dataset_type = 'COCOStuffDataset'
data_root = 'data/coco_stuff164k'
crop_size = (504, 504)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(2016, 504), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2016, 504), keep_ratio=True),
    dict(type='ResizeToMultiple', size_divisor=14),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale=(int(2016 * r), int(504 * r)), keep_ratio=True) for r in img_ratios],
        [dict(type='ResizeToMultiple', size_divisor=14)],
        [dict(type='RandomFlip', prob=0.0, direction='horizontal'),
         dict(type='RandomFlip', prob=1.0, direction='horizontal')],
        [dict(type='LoadAnnotations')],
        [dict(type='PackSegInputs')],
    ]),
]
train_dataloader = dict(dataset=dict(
    type=dataset_type, data_root=data_root,
    data_prefix=dict(img_path='images/train2017', seg_map_path='annotations/train2017'), pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(
    type=dataset_type, data_root=data_root,
    data_prefix=dict(img_path='images/val2017', seg_map_path='annotations/val2017'), pipeline=test_pipeline))
test_dataloader = val_dataloader
