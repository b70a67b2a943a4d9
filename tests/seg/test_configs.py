"""Every published recipe loads, builds its model on the meta device, and carries the recipe values of
the InternViT-6B ADE20K protocol (the published recipes; InternVL-MMDetSeg's COCO-Stuff-164k ones run
the same protocol on 171 classes), checked against a table written here."""
import re
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmseg_custom  # noqa: F401
from internvl.models import build_on_meta
from mmseg.registry import MODELS

CONFIGS = sorted((Path(__file__).resolve().parents[2] / 'configs' / 'seg' / 'internvit').glob('*.py'))
ARCHS = {  # arch -> (width, params in billions, UperNet taps, probe tap, last tap)
    'internvit-6b-224px': (3200, 5.903, [11, 23, 35, 47], [44], [47]),
    'internvit-6b-448px': (3200, 5.536, [11, 22, 33, 44], [44], [44]),
    'internvit-300m-448px': (1024, 0.304, [5, 11, 17, 23], [23], [23]),
}
PUBLISHED = {  # (head, frozen, fraction) -> mIoU of InternViT-6B-224px
    ('linear', True, 1): 47.2, ('upernet', True, 1): 54.9, ('upernet', False, 1): 58.9,
    ('linear', False, 1): 57.2, ('linear', False, 2): 55.8, ('linear', False, 4): 53.3,
    ('linear', False, 8): 50.0, ('linear', False, 16): 46.5,
}
DATASETS = {  # dataset in the name -> (mmseg dataset, classes, reduce_zero_label, validation images)
    'ade20k': ('ADE20KDataset', 150, True, 'images/validation'),
    'coco-stuff164k': ('COCOStuffDataset', 171, False, 'images/val2017'),
}
FEW_SHOT = {1: (80000, 1500), 2: (40000, 800), 4: (20000, 400), 8: (10000, 200), 16: (5000, 100)}


def parse_name(path: Path, with_strategy: bool = False):
    m = re.fullmatch(r'(linear|upernet)_(internvit-[\w-]+?)(-frozen)?_8xb2-(\d+)k_(ade20k|coco-stuff164k)(?:-1of(\d+))?'
                     r'-504x504(?:_ds-zero(\d)(-bf16|-amp)?(-offload)?)?\.py', path.name)
    assert m, f'{path.name} does not follow {{head}}_{{backbone}}_{{gpus}}xb{{batch}}-{{schedule}}_{{dataset}}-{{crop}}'
    head, arch, frozen, kiters, dataset, fraction, stage, precision, offload = m.groups()
    parsed = (head, arch, bool(frozen), int(kiters) * 1000, int(fraction or 1), dataset)
    if not with_strategy:
        return parsed
    if stage is None and not frozen:  # every recipe that trains the backbone: DeepSpeed ZeRO-1 in bf16
        stage, precision = 1, '-bf16'
    return parsed + ((int(stage) if stage else None, precision == '-bf16', bool(offload)),)


def test_every_published_row_has_a_config():
    rows = {(parse_name(p)[0], parse_name(p)[2], parse_name(p)[4], parse_name(p)[1]) for p in CONFIGS
            if parse_name(p)[5] == 'ade20k'}
    for arch in ARCHS:
        for head, frozen, fraction in PUBLISHED:
            assert (head, frozen, fraction, arch) in rows


@pytest.fixture(scope='module', autouse=True)
def scope():
    init_default_scope('mmseg')


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_recipe(path):
    head, arch, frozen, iters, fraction, dataset, (stage, bf16, offload) = parse_name(path, with_strategy=True)
    width, billions, taps, probe_tap, last_tap = ARCHS[arch]
    dataset_type, classes, reduce_zero_label, val_images = DATASETS[dataset]
    cfg = Config.fromfile(str(path))
    header = path.read_text().split('_base_')[0]
    if arch == 'internvit-6b-224px' and dataset == 'ade20k':
        assert f'mIoU {PUBLISHED[(head, frozen, fraction)]}' in header.replace('\n# ', ' ')
    else:
        assert 'no published number' in header

    bb = cfg.model.backbone
    assert bb.type == 'InternViT' and bb.arch == arch and bb.get('frozen', False) == frozen
    assert bb.get('with_fpn', False) == (head == 'upernet')
    if head == 'upernet':
        assert bb.out_indices == taps
        assert cfg.model.decode_head.type == 'UPerHead' and cfg.model.decode_head.channels == 1536
        assert cfg.model.decode_head.in_channels == [width] * 4
        assert cfg.model.auxiliary_head.loss_decode.loss_weight == 0.4
        assert cfg.model.auxiliary_head.in_index == (1 if frozen else 2)  # the original's: stride 7 / 14
        assert cfg.model.auxiliary_head.num_classes == classes
    else:
        assert bb.out_indices == (probe_tap if frozen else last_tap)
        assert cfg.model.decode_head.type == 'LinearProbeHead' and cfg.model.decode_head.in_channels == width
    assert cfg.model.decode_head.num_classes == classes
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        assert loader.dataset.type == dataset_type
    assert cfg.test_dataloader.dataset.data_prefix.img_path == val_images
    assert bb.drop_path_rate == (0.0 if frozen else 0.4)
    if frozen:
        assert bb.backbone_dtype == 'bfloat16'
    if not frozen and head == 'upernet':
        assert bb.with_cp  # the 6B full-tuning recipes checkpoint activations

    optim = cfg.optim_wrapper
    if stage is None:
        assert not cfg.get('strategy')
    else:  # DeepSpeed through our strategy (CrashSafeRunner builds mmengine's FlexibleRunner for it)
        strategy = cfg.strategy
        assert cfg.runner_type == 'CrashSafeRunner' and strategy.type == 'SafeDeepSpeedStrategy'
        assert optim.type == 'DeepSpeedOptimWrapper' and strategy.gradient_clipping == 1.0
        assert strategy.zero_optimization.stage == stage and strategy.zero_optimization.reduce_bucket_size == 5e8
        assert strategy.get('bf16', {}).get('enabled', False) == bf16
        assert ('offload_optimizer' in strategy.zero_optimization) == offload
        if bf16:  # the whole model in bf16, BatchNorm buffers included
            assert strategy.config.data_types.buffer_dtype == 'bf16' and strategy.inputs_to_half == ['inputs']
        else:  # fp32 heads behind a bf16 backbone
            assert bb.backbone_dtype == 'bfloat16'
    assert optim.constructor == 'LayerDecayOptimWrapperConstructor'
    assert optim.optimizer.type == 'AdamW' and optim.optimizer.lr == 4e-5 and optim.optimizer.betas == (0.9, 0.999)
    assert optim.optimizer.weight_decay == (0.0 if head == 'linear' and frozen else 0.05)
    assert optim.paramwise_cfg.layer_decay_rate == (1.0 if frozen else 0.95)
    max_iters, warmup = FEW_SHOT[fraction]
    assert iters == max_iters == cfg.train_cfg.max_iters and cfg.train_cfg.val_interval == 1000
    warm, poly = cfg.param_scheduler
    assert (warm.type, warm.start_factor, warm.begin, warm.end) == ('LinearLR', 1e-6, 0, warmup)
    assert (poly.type, poly.power, poly.begin, poly.end) == ('PolyLR', 1.0, warmup, max_iters)

    train = cfg.train_dataloader
    assert train.batch_size == 2  # x 8 GPUs = 16
    steps = {t.type: t for t in train.dataset.pipeline}
    assert steps['RandomResize'].scale == (2016, 504) and steps['RandomResize'].ratio_range == (0.5, 2.0)
    assert steps['RandomCrop'].crop_size == (504, 504) and steps['RandomCrop'].cat_max_ratio == 0.75
    assert 'RandomFlip' in steps and 'PhotoMetricDistortion' in steps
    assert steps['LoadAnnotations'].get('reduce_zero_label', False) == reduce_zero_label
    assert train.dataset.get('ann_file', '') == ('' if fraction == 1 else f'splits/ade20k_1of{fraction}.txt')
    test_steps = {t.type: t for t in cfg.test_dataloader.dataset.pipeline}
    assert test_steps['Resize'].scale == (2016, 504) and test_steps['Resize'].keep_ratio
    assert test_steps['ResizeToMultiple'].size_divisor == 14  # the original's test pipeline
    assert [t.type for t in cfg.test_pipeline] == [t.type for t in cfg.test_dataloader.dataset.pipeline]
    assert cfg.tta_model.type == 'BatchedSegTTAModel' and cfg.tta_pipeline[1].type == 'TestTimeAug'
    assert cfg.model.test_cfg.mode == 'slide'
    assert cfg.model.test_cfg.crop_size == (504, 504) and cfg.model.test_cfg.stride == (322, 322)
    assert cfg.model.data_preprocessor.size == (504, 504)

    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    vit = sum(p.numel() for p in model.backbone.vit.parameters())
    pos = model.backbone.vit.pos_embed  # held at the 504 crop's grid (img_size=504), as the original held it
    assert bb.img_size == 504 and pos.shape[1] == 1 + 36 * 36
    pretrained = vit - pos.numel() + build_on_meta(bb.arch).pos_embed.numel()  # at the pretraining grid
    assert pretrained / 1e9 == pytest.approx(billions, abs=1e-3)
    assert all(not p.requires_grad for p in model.backbone.vit.parameters()) == frozen
