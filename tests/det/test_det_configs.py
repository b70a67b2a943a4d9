"""Every COCO recipe (and the ViT-Adapter ADE20K recipe) loads, builds its model on the meta device and
carries the recipe values (the published COCO and ViT-Adapter recipes), checked against a table here."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope

import mmdet_custom  # noqa: F401
import mmseg_custom  # noqa: F401
from internvl.arch import resolve_arch
from internvl_mmlab.cli import check_data_roots
from internvl_mmlab.errors import DataRootError

REPO = Path(__file__).resolve().parents[2]
DET = REPO / 'configs' / 'det' / 'internvit'
ADAPTER = REPO / 'configs' / 'det' / 'vit_adapter'
ARCHS = {  # backbone in the name -> (width, blocks, position grid side in pixels at patch 16, ViT params in billions)
    '6b-224px': (3200, 48, 256, 5.904),
    '6b-448px': (3200, 45, 512, 5.537),
    '300m-448px': (1024, 24, 512, 0.305),
}
QUARTERS = {48: [[0, 11], [12, 23], [24, 35], [36, 47]], 45: [[0, 10], [11, 21], [22, 32], [33, 44]],
            24: [[0, 5], [6, 11], [12, 17], [18, 23]]}
RECIPES = {  # file -> (backbone type, arch, frozen, precision, neck)
    f'{folder}/mask-rcnn_internvit{adapter}-{arch}{frozen}_8xb2-1x_coco.py':
        ('InternViTAdapter' if adapter else 'InternViT', arch, bool(frozen), 'fp16', 'published')
    for folder, adapter in (('internvit', ''), ('vit_adapter', '-adapter'))
    for arch in ARCHS for frozen in ('-frozen', '')
}
RECIPES.update({  # the bf16 variants of the 6B-224 recipes
    f'{folder}/mask-rcnn_internvit{adapter}-6b-224px{frozen}_8xb2-1x_coco_ds-zero1-bf16.py':
        ('InternViTAdapter' if adapter else 'InternViT', '6b-224px', bool(frozen), 'bf16', 'published')
    for folder, adapter in (('internvit', ''), ('vit_adapter', '-adapter')) for frozen in ('-frozen', '')
})
RECIPES.update({  # ViTDet's simple feature pyramid as the neck
    f'internvit/mask-rcnn_internvit-6b-224px{frozen}-sfp_8xb2-1x_coco.py':
        ('InternViT', '6b-224px', bool(frozen), 'fp16', 'sfp') for frozen in ('-frozen', '')
})
ADE_ADAPTER = 'seg/vit_adapter/upernet_internvit-adapter-6b-224px-frozen_8xb2-80k_ade20k-512x512.py'


def test_the_table_is_the_folder():
    shipped = {f'{p.parent.name}/{p.name}' for folder in (DET, ADAPTER) for p in folder.glob('*.py')}
    assert shipped == set(RECIPES)


def check_adapter(bb, width: int, blocks: int) -> None:
    """The original InternViTAdapter's settings (InternVL-MMDetSeg's ADE20K config and its defaults)."""
    assert bb.interaction_indexes == QUARTERS[blocks]
    assert (bb.conv_inplane, bb.n_points, bb.deform_ratio, bb.cffn_ratio, bb.init_values) == (64, 4, 0.25, 0.25, 0.0)
    assert bb.with_cffn and bb.add_vit_feature and bb.use_extra_extractor and bb.use_final_norm and bb.with_cp
    assert bb.deform_num_heads == (25 if width == 3200 else 16) and not bb.use_cls_token


def check_deepspeed(cfg, precision: str) -> None:
    """ZeRO-1 with the reference's buckets and clipping, through our runner (mmengine's FlexibleRunner for
    a strategy) and our DeepSpeed strategy, in fp16 (dynamic loss scale) or bf16, parameters, buffers and
    images all cast (internvl_mmlab/precision.py)."""
    strategy = cfg.strategy
    assert cfg.runner_type == 'CrashSafeRunner' and strategy.type == 'SafeDeepSpeedStrategy'
    assert strategy.zero_optimization.stage == 1 and strategy.zero_optimization.reduce_bucket_size == 5e8
    assert strategy.gradient_clipping == 1.0 and strategy.inputs_to_half == ['inputs']
    assert strategy.config.data_types.buffer_dtype == precision
    assert bool(strategy.get('fp16', {}).get('enabled')) == (precision == 'fp16')
    assert bool(strategy.get('bf16', {}).get('enabled')) == (precision == 'bf16')
    assert cfg.optim_wrapper.type == 'DeepSpeedOptimWrapper'


def build_on_meta(cfg, scope: str):
    with torch.device('meta'), DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(cfg.model)


@pytest.mark.parametrize('name', sorted(RECIPES))
def test_coco_recipe(name):
    kind, arch, frozen, precision, neck = RECIPES[name]
    width, blocks, grid_pixels, billions = ARCHS[arch]
    path = REPO / 'configs' / 'det' / name
    cfg = Config.fromfile(str(path))
    header = path.read_text().split('_base_')[0]
    assert 'no published number' in header.replace('\n# ', ' ')
    assert cfg.default_scope == 'mmdet' and cfg.custom_imports.imports == ['mmdet_custom']

    bb = cfg.model.backbone
    assert bb.type == kind and bb.get('frozen', False) == frozen
    assert bb.arch == f'internvit-{arch}-p16'  # the preset table's patch-16 variant, no arch written here
    vit = resolve_arch(bb.arch)
    assert vit['patch_size'] == 16 and vit['img_size'] == grid_pixels
    assert (vit['embed_dims'], vit['num_layers']) == (width, blocks)
    assert bb.pretrained.startswith('pretrained/InternViT-')
    if kind == 'InternViT':  # the published recipe's backbone
        assert bb.window_size == 16 and bb.global_attn_indexes == [] and not bb.use_cls_token
        assert bb.out_indices == [blocks - 1] and bb.with_fpn == (neck == 'published')
        assert bb.get('fpn_norm', 'LN') == 'LN'  # the published LayerNorm (the CPU demo's BN is the demo's)
    else:
        check_adapter(bb, width, blocks)
    if frozen:
        assert bb.backbone_dtype == {'fp16': 'float16', 'bf16': 'bfloat16'}[precision] and bb.drop_path_rate == 0.0
    else:
        assert bb.drop_path_rate == 0.4 and bb.with_cp
    model_cfg = cfg.model  # mmdet's Mask R-CNN with the box arithmetic in fp32
    assert model_cfg.type == 'InternViTMaskRCNN' and model_cfg.rpn_head.type == 'FP32BoxRPNHead'
    assert model_cfg.roi_head.type == 'FP32BoxRoIHead'
    extractors = model_cfg.roi_head.bbox_roi_extractor, model_cfg.roi_head.mask_roi_extractor
    assert all(e.type == 'FP32RoIExtractor' and e.get('finest_scale', 56) == 56 for e in extractors)
    if neck == 'published':
        assert cfg.model.neck.type == 'FPN' and cfg.model.neck.in_channels == [width] * 4
    else:
        assert cfg.model.neck.type == 'SimpleFeaturePyramid' and cfg.model.neck.in_channels == width
        assert cfg.model.neck.num_outs == 5 and cfg.model.neck.get('norm', 'LN') == 'LN'
    assert cfg.model.neck.out_channels == 256
    assert cfg.model.roi_head.bbox_head.num_classes == 80 and cfg.model.roi_head.mask_head.num_classes == 80
    assert cfg.model.data_preprocessor.pad_size_divisor == 32

    optim = cfg.optim_wrapper
    assert optim.optimizer.type == 'AdamW' and optim.optimizer.lr == 1e-4 and optim.optimizer.weight_decay == 0.05
    assert optim.constructor == 'LayerDecayOptimWrapperConstructor'
    assert optim.paramwise_cfg.layer_decay_rate == (1.0 if frozen else 0.95)
    check_deepspeed(cfg, precision)
    assert cfg.train_cfg.type == 'ResumableEpochBasedTrainLoop' and cfg.train_cfg.max_epochs == 12
    steps = cfg.param_scheduler[1]
    assert steps.type == 'MultiStepLR' and steps.milestones == [8, 11]

    assert cfg.train_dataloader.batch_size == 2  # x 8 GPUs = 16
    assert cfg.train_dataloader.dataset.type == 'CocoDataset'
    assert cfg.train_dataloader.dataset.ann_file == 'annotations/instances_train2017.json'
    resize = {t.type: t for t in cfg.train_dataloader.dataset.pipeline}['Resize']
    assert resize.scale == (1333, 800) and resize.keep_ratio
    assert cfg.val_evaluator.type == 'CocoMetric' and cfg.val_evaluator.metric == ['bbox', 'segm']

    model = build_on_meta(cfg, 'mmdet')
    vit = sum(p.numel() for p in model.backbone.vit.parameters())
    assert vit / 1e9 == pytest.approx(billions, abs=1e-3)
    assert all(not p.requires_grad for p in model.backbone.vit.parameters()) == frozen
    assert model.backbone.vit.cls_token is None


def test_the_detection_demo_pools_at_mmdets_default_levels():
    """The CPU demo keeps mmdet's RoI levels (finest_scale 56: its 20-50 px objects pool from stride 4),
    its simple FPN and mmdet's FPN with BatchNorm (it trains from scratch), as built by the registry."""
    cfg = Config.fromfile(str(REPO / 'configs' / 'det' / 'demo' / 'mask-rcnn_internvit-tiny_1xb4-12e_synthetic-coco-128x128.py'))
    with DefaultScope.overwrite_default_scope('mmdet'):  # init_default_scope would leak into later tests
        model = MODELS.build(cfg.model)
    assert model.roi_head.bbox_roi_extractor.finest_scale == model.roi_head.mask_roi_extractor.finest_scale == 56
    assert isinstance(model.backbone.fpn.up4[1], torch.nn.BatchNorm2d)


def test_ade20k_adapter_recipe():
    """The 58.1 mIoU recipe: frozen 6B + ViT-Adapter + UperNet, patch 16, crop 512, slide 512 / 341."""
    path = REPO / 'configs' / ADE_ADAPTER
    cfg = Config.fromfile(str(path))
    assert 'mIoU 58.1' in path.read_text().split('_base_')[0].replace('\n# ', ' ')
    bb = cfg.model.backbone
    assert bb.type == 'InternViTAdapter' and bb.frozen and bb.backbone_dtype == 'float16'
    assert bb.arch == 'internvit-6b-224px-p16'
    check_adapter(bb, 3200, 48)
    assert cfg.model.decode_head.type == 'UPerHead' and cfg.model.decode_head.channels == 1536
    assert cfg.model.decode_head.in_channels == [3200] * 4
    assert cfg.model.test_cfg.crop_size == (512, 512) and cfg.model.test_cfg.stride == (341, 341)
    assert cfg.model.data_preprocessor.size == (512, 512)
    crop = {t.type: t for t in cfg.train_dataloader.dataset.pipeline}['RandomCrop']
    assert crop.crop_size == (512, 512)
    optim = cfg.optim_wrapper
    assert optim.optimizer.lr == 4e-5 and optim.optimizer.weight_decay == 0.05
    assert optim.paramwise_cfg.layer_decay_rate == 0.95
    check_deepspeed(cfg, 'fp16')
    assert cfg.train_cfg.type == 'ResumableIterBasedTrainLoop' and cfg.train_cfg.max_iters == 80000
    model = build_on_meta(cfg, 'mmseg')
    assert all(not p.requires_grad for p in model.backbone.vit.parameters())
    assert any(p.requires_grad for p in model.backbone.injectors.parameters())


def test_a_missing_coco_folder_or_annotation_file_is_named(tmp_path):
    cfg = Config.fromfile(str(REPO / 'configs' / 'det' / 'internvit' / 'mask-rcnn_internvit-6b-224px-frozen_8xb2-1x_coco.py'))
    cfg.train_dataloader.dataset.data_root = str(tmp_path / 'nowhere')
    with pytest.raises(DataRootError, match=r"train_dataloader.dataset.data_root = .*nowhere.* does not exist.*"
                                            r"instances_\{train,val\}2017.json"):
        check_data_roots(cfg, ('train_dataloader',))
    (tmp_path / 'coco' / 'train2017').mkdir(parents=True)
    cfg.train_dataloader.dataset.data_root = str(tmp_path / 'coco')
    with pytest.raises(DataRootError, match=r'ann_file: .*annotations/instances_train2017.json does not exist'):
        check_data_roots(cfg, ('train_dataloader',))
