"""The probe sweep: K linear probes on one frozen backbone pass, each ending bit-identical to the same
probe trained alone by the linear-probe recipe; its optimizer, metric, recipes and report."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmseg_custom  # noqa: F401
from mmseg.registry import MODELS
from mmseg_custom.probing import ProbeSweepHead, probe_seed
from probe_study import BLOCKS, LRS, MAX_NORM, last_record, study, tiny_cfg, train  # noqa: F401 (study: a fixture)

REPO = Path(__file__).resolve().parents[2]
LINEAR = REPO / 'configs' / 'seg' / 'internvit' / 'linear_internvit-6b-224px-frozen_8xb2-80k_ade20k-504x504.py'
PROBING = sorted((REPO / 'configs' / 'seg' / 'probing').glob('*.py'))
ALONE = {'b3_lr4e-03': (3, 4e-3, True), 'b1_lr1e-03_nobn': (1, 1e-3, False)}


@pytest.fixture(scope='module', autouse=True)
def scope():
    init_default_scope('mmseg')


def alone_cfg(study: Path, name: str) -> Config:
    """The same probe trained alone by the linear-probe recipe's own model, optimizer and metric, with the
    sweep's seed for its initialisation."""
    block, lr, norm = ALONE[name]
    linear = Config.fromfile(str(LINEAR))
    cfg = tiny_cfg(study, f'alone_{name}')
    cfg.model.type = linear.model.type
    cfg.model.backbone.out_indices = [block]
    cfg.model.decode_head = dict(linear.model.decode_head, in_channels=96, norm_cfg=dict(type='BN', requires_grad=True),
                                 with_norm=norm, init_seed=probe_seed(0, name))
    cfg.optim_wrapper = dict(linear.optim_wrapper, clip_grad=dict(max_norm=MAX_NORM),
                             optimizer=dict(linear.optim_wrapper.optimizer, lr=lr))
    cfg.val_evaluator = cfg.test_evaluator = linear.val_evaluator
    return cfg


@pytest.fixture(scope='module')
def sweep(study):
    return train(tiny_cfg(study, 'sweep'))


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(ALONE))
def test_each_probe_ends_as_it_does_trained_alone(study, sweep, name):
    alone = train(alone_cfg(study, name))
    probe = sweep.decode_head.probes[name].state_dict()
    head = alone.decode_head.state_dict()
    assert sorted(probe) == sorted(head)
    for key in head:  # weights, BN statistics and counters
        assert torch.equal(probe[key], head[key]), key
    initial = ProbeSweepHead(96, 150, BLOCKS, LRS, norm=[True, False], norm_cfg=dict(type='BN'))
    initial.init_weights()
    assert not torch.equal(initial.probes[name].conv_seg.weight, probe['conv_seg.weight'])  # it did train
    assert last_record(study / 'sweep', 'grad_norm')['grad_norm'] > MAX_NORM  # clipping was active
    # validation: the probe's score in the sweep is the lone run's, from mmseg's own IoUMetric
    sweep_scores = last_record(study / 'sweep', f'probe/{name}/mIoU')
    alone_scores = last_record(study / f'alone_{name}', 'mIoU')
    for key in ('aAcc', 'mIoU', 'mAcc'):
        assert sweep_scores[f'probe/{name}/{key}'] == alone_scores[key], key


@pytest.mark.slow
def test_the_frozen_backbone_stays_bit_identical(study, sweep):
    pretrained = torch.load(study / 'vit.pth', weights_only=True)
    trained = sweep.backbone.vit.state_dict()
    assert all(torch.equal(trained[key], value) for key, value in pretrained.items())


@pytest.mark.slow
def test_metrics_name_every_probe_and_the_best(study, sweep):
    scores = last_record(study / 'sweep', 'probe/b1_lr1e-03/mIoU')
    names = {key.split('/')[1] for key in scores if key.startswith('probe/')}
    assert names == set(sweep.decode_head.probes) and len(names) == len(BLOCKS) * len(LRS) * 2
    best = max(names, key=lambda n: scores[f'probe/{n}/mIoU'])
    assert scores['mIoU'] == scores[f'probe/{best}/mIoU']
    log = next((study / 'sweep').glob('*/*.log')).read_text()
    assert f'best_probe: {best}' in log or f'best {best}' in log
    with torch.no_grad():  # without data samples, as mmseg's predict: every probe's map at the input's size
        sample, = sweep.eval().predict(torch.randn(1, 3, 98, 126))
    assert sorted(sample.probe_sem_seg) == sorted(names)
    assert all(tuple(m.shape) == (1, 98, 126) for m in sample.probe_sem_seg.values())


@pytest.mark.slow
def test_report_writes_the_table_and_the_plot(study, sweep, tmp_path):
    import csv
    import subprocess
    import sys
    from PIL import Image
    result = subprocess.run([sys.executable, 'tools/analysis/probe_report.py', str(study / 'sweep'), '--out', str(tmp_path)],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    scores = last_record(study / 'sweep', 'probe/b1_lr1e-03/mIoU')
    rows = list(csv.DictReader(open(tmp_path / 'probe_report.csv')))
    assert len(rows) == len(BLOCKS) * 2  # (block, BN or conv)
    for row in rows:
        suffix = '' if row['norm'] == 'BN' else '_nobn'
        values = {lr: float(row[f'lr={lr}']) for lr in ('1e-03', '4e-03')}
        for lr, value in values.items():
            assert value == pytest.approx(scores[f'probe/b{row["block"]}_lr{lr}{suffix}/mIoU'], abs=0.005)
        assert float(row['best_mIoU']) == max(values.values())
    assert '| block | norm |' in (tmp_path / 'probe_report.md').read_text()
    width, height = Image.open(tmp_path / 'probe_report.png').size
    assert (width, height) == (700, 450)


def test_initialisation_depends_on_the_probe_not_on_the_grid_order():
    kwargs = dict(norm_cfg=dict(type='BN'), norm=[True, False])
    one = ProbeSweepHead(96, 150, [1, 3], [1e-3, 4e-3], **kwargs)
    other = ProbeSweepHead(96, 150, [3, 1], [4e-3, 1e-3, 2e-3], **kwargs)
    torch.manual_seed(1)
    one.init_weights()
    torch.manual_seed(2)
    other.init_weights()
    state = torch.get_rng_state()
    assert list(one.probes) != list(other.probes)[:len(one)]
    for name, probe in one.items():
        assert torch.equal(probe.conv_seg.weight, other.probes[name].conv_seg.weight), name
    weights = [p.conv_seg.weight for p in one.probes.values()]
    assert not torch.equal(weights[0], weights[1])  # each probe its own seed
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is left as it was
    assert one.probes['b1_lr1e-03_nobn'].bn.__class__.__name__ == 'Identity'
    assert one.probes['b3_lr1e-03'].in_index == 1


def test_optimizer_gives_each_probe_its_lr_weight_decay_and_clipping(study):
    from mmengine.optim import build_optim_wrapper
    cfg = tiny_cfg(study, 'optim', **{'model.decode_head.weight_decays': [0.0, 0.05]})
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    assert type(wrapper).__name__ == 'ProbeSweepOptimWrapper'
    groups = wrapper.optimizer.param_groups
    assert {g['probe'] for g in groups} == set(model.decode_head.probes) and len(model.decode_head) == 16
    for group in groups:
        setting = model.decode_head.settings[group['probe']]
        assert group['lr'] == setting.lr
        assert group['weight_decay'] == (0.0 if group['params'][0].ndim == 1 else setting.weight_decay)
    # one probe's huge gradient is clipped on its own, the others' left as they are
    for p in model.decode_head.parameters():
        p.grad = torch.full_like(p, 1e-4)
    loud = model.decode_head.probes['b1_lr1e-03'].conv_seg.weight
    loud.grad.fill_(10.0)
    wrapper._clip_grad()
    quiet = model.decode_head.probes['b3_lr1e-03'].conv_seg.weight
    assert torch.all(quiet.grad == 1e-4)
    assert torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in model.decode_head.probes['b1_lr1e-03'].parameters()])) \
        == pytest.approx(MAX_NORM, rel=1e-3)


@pytest.mark.parametrize('options, message', [
    ({'model.backbone.out_indices': [3, 1]}, 'set backbone.out_indices'),
    ({'model.backbone.frozen': False}, 'must be frozen'),
    ({'model.decode_head.dropout_ratio': 0.1}, 'dropout_ratio must be 0'),
    ({'model.decode_head.blocks': [1, 1]}, 'distinct'),
])
def test_bad_sweeps_are_refused(study, options, message):
    cfg = tiny_cfg(study, 'bad', **options)
    with pytest.raises(ValueError, match=message):
        MODELS.build(cfg.model)


@pytest.mark.parametrize('options, message', [
    ({'optim_wrapper.type': 'AmpOptimWrapper'}, 'ProbeSweepOptimWrapper'),
    ({'optim_wrapper.paramwise_cfg': dict(layer_decay_rate=0.9)}, 'paramwise_cfg'),
])
def test_bad_optimizers_are_refused(study, options, message):
    from mmengine.optim import build_optim_wrapper
    cfg = tiny_cfg(study, 'bad', **options)
    with pytest.raises(ValueError, match=message):
        build_optim_wrapper(MODELS.build(cfg.model), cfg.optim_wrapper)


ARCHS = {  # arch -> (width, blocks probed: every 4th, the published block 44 of the 6B, the last of the 300M)
    'internvit-6b-224px': (3200, list(range(0, 48, 4))), 'internvit-6b-448px': (3200, list(range(0, 45, 4))),
    'internvit-300m-448px': (1024, list(range(3, 24, 4)))}


@pytest.mark.parametrize('path', PROBING, ids=lambda p: p.name)
def test_probing_recipes(path):
    cfg = Config.fromfile(str(path))
    backbone, head = cfg.model.backbone, cfg.model.decode_head
    width, blocks = ARCHS[backbone.arch]
    assert backbone.frozen and backbone.backbone_dtype == 'bfloat16' and backbone.out_indices == head.blocks == blocks
    assert head.in_channels == width and 4e-5 in head.lrs and 3 <= len(head.lrs) <= 5 and head.norm == [True, False]
    assert cfg.optim_wrapper.optimizer.weight_decay == 0.0 and cfg.train_cfg.max_iters == 80000
    assert cfg.train_dataloader.batch_size == 2 and cfg.val_evaluator.type == 'ProbeSweepIoUMetric'
    header = path.read_text().split('_base_')[0]
    if backbone.arch == 'internvit-6b-224px':
        assert 'mIoU 47.2' in header.replace('\n# ', ' ') and cfg.published_probe.probe == 'b44_lr4e-05'
        assert 44 in head.blocks
    else:
        assert 'no published number' in header
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    assert len(model.decode_head) == len(head.blocks) * len(head.lrs) * 2
    assert sum(p.numel() for p in model.backbone.parameters()) > (5e9 if width == 3200 else 3e8)


@pytest.mark.slow
def test_tools_test_scores_every_probe_of_a_checkpoint(study, sweep, tmp_path):
    import subprocess
    import sys
    config = next((study / 'sweep').glob('*.py'))  # the run's config, as mmengine saved it
    command = [sys.executable, 'tools/test.py', str(config), str(study / 'sweep' / 'iter_4.pth'), '--work-dir', str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    trained = last_record(study / 'sweep', 'probe/b1_lr1e-03/mIoU')  # the validation at the end of training
    for name in sweep.decode_head.probes:
        assert f'probe/{name}/mIoU: {trained[f"probe/{name}/mIoU"]:.6g}' in result.stdout
    report = subprocess.run([sys.executable, 'tools/analysis/probe_report.py', str(tmp_path)], capture_output=True,
                            text=True, cwd=REPO)
    assert report.returncode == 0 and 'probe_report.png' in report.stdout, report.stderr[-2000:]
    for flag, message in (('--tta', 'scores every probe single-scale'), ('--out', 'writes no label maps')):
        refused = subprocess.run(command + ([flag] if flag == '--tta' else [flag, str(tmp_path / 'pred')]),
                                 capture_output=True, text=True, cwd=REPO)
        assert refused.returncode == 1 and message in refused.stderr, refused.stderr[-2000:]
