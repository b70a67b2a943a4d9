"""DeepSpeed through mmengine's FlexibleRunner on the CPU: ZeRO-2 across 2 processes follows the plain
Runner, resume continues exactly, ZeRO-3 bf16 trains, a released checkpoint evaluates like the run;
the memory planner agrees with DeepSpeed's own estimators."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'tests' / 'helpers' / 'configs' / 'tiny_deterministic_ds-zero2.py'
DEMO_DS = REPO / 'configs' / 'seg' / 'demo' / 'upernet_internvit-tiny_1xb8-500it_synthetic-ade-112x112_ds-zero2.py'
LOSS_RTOL = 1e-4  # fp32 ZeRO-2 (2 processes) against the plain single-process Runner


def env() -> dict:
    paths = [str(REPO / 'tests' / 'helpers'), str(REPO), os.environ.get('PYTHONPATH', '')]
    return {**os.environ, 'PYTHONPATH': os.pathsep.join(paths), 'PYTHON': sys.executable}


def train(work_dir: Path, data: Path, *options: str, processes: int = 1, resume: bool = False, config: Path = CONFIG):
    opts = ['--cfg-options', f'train_dataloader.dataset.data_root={data}', f'val_dataloader.dataset.data_root={data}',
            f'test_dataloader.dataset.data_root={data}', *options]
    extra = ['--work-dir', str(work_dir), *(['--resume'] if resume else []), *opts]
    if processes == 1:
        cmd = [sys.executable, str(REPO / 'tools' / 'train.py'), str(config), *extra]
    else:
        cmd = ['bash', str(REPO / 'tools' / 'dist_train.sh'), str(config), str(processes), '--cpu', *extra]
    result = subprocess.run(cmd, capture_output=True, text=True, env={**env(), 'PORT': '29561'}, cwd=REPO,
                            timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def losses(work_dir: Path) -> dict[int, float]:
    rows = (line.split() for line in (work_dir / 'losses.txt').read_text().splitlines())
    return {int(i): float(v) for i, v in rows}


def last_val_miou(work_dir: Path) -> float:
    scalars = sorted(work_dir.glob('*/vis_data/scalars.json'))[-1]
    return [json.loads(line)['mIoU'] for line in scalars.read_text().splitlines() if 'mIoU' in line][-1]


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    from mmseg_custom.datasets import write_synthetic_ade
    return write_synthetic_ade(tmp_path_factory.mktemp('ds') / 'data', num_train=24, num_val=4, size=112)


@pytest.fixture(scope='module')
def initial_weights(tmp_path_factory):
    """One set of initial weights for every run: the Runner and the FlexibleRunner draw random numbers
    in different orders before they build the model."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(str(CONFIG)).model)
    model.init_weights()
    path = tmp_path_factory.mktemp('init') / 'init.pth'
    torch.save({'state_dict': model.state_dict()}, path)
    return ('model.init_cfg.type=Pretrained', f'model.init_cfg.checkpoint={path}')


@pytest.fixture(scope='module')
def plain_run(data, initial_weights, tmp_path_factory):
    work = tmp_path_factory.mktemp('plain')
    train(work, data, *initial_weights, 'runner_type=Runner', 'strategy=None', 'optim_wrapper.type=OptimWrapper')
    return work


@pytest.fixture(scope='module')
def zero2_two_processes(data, initial_weights, tmp_path_factory):
    work = tmp_path_factory.mktemp('zero2x2')
    # 2 processes x 2 images = the plain run's batch of 4 (the sampler deals the same images out)
    train(work, data, *initial_weights, 'train_dataloader.batch_size=2', processes=2)
    return work


@pytest.mark.slow
def test_zero2_two_processes_follow_the_plain_runner(plain_run, zero2_two_processes):
    plain, zero2 = losses(plain_run), losses(zero2_two_processes)
    assert sorted(plain) == sorted(zero2) == list(range(1, 7))
    for i in plain:
        assert zero2[i] == pytest.approx(plain[i], rel=LOSS_RTOL), (i, plain, zero2)
    assert plain[6] < plain[1]  # it learns


@pytest.mark.slow
def test_resume_continues_at_the_right_iteration(data, initial_weights, tmp_path):
    uninterrupted = tmp_path / 'full'
    train(uninterrupted, data, *initial_weights)
    resumed = tmp_path / 'resumed'
    train(resumed, data, *initial_weights, 'train_cfg.max_iters=3')
    result = train(resumed, data, *initial_weights, resume=True)
    assert 'Moved the sampler to iteration 3 without loading' in result.stdout + result.stderr  # no replay
    # a resume, not a restart: the first iteration the resumed run logs is 4, and it records 4-6 only
    logged = re.findall(r'Iter\(train\) \[\s*(\d+)/6\]', result.stdout + result.stderr)
    assert logged and int(logged[0]) == 4, logged
    recorded = [int(line.split()[0]) for line in (resumed / 'losses.txt').read_text().splitlines()]
    assert recorded == [1, 2, 3, 4, 5, 6], recorded
    first, full = losses(resumed), losses(uninterrupted)
    assert sorted(first) == list(range(1, 7))  # 1-3 before the stop, 4-6 after the resume
    for i in range(1, 7):
        assert first[i] == pytest.approx(full[i], rel=1e-6), (i, first, full)


@pytest.mark.slow
def test_zero3_bf16_trains_with_layer_decay_groups_and_pretrained_backbone(data, tmp_path):
    """ZeRO-3, all in bf16: it learns; the layer-decay groups reach DeepSpeed's optimizer intact; the
    pretrained backbone is loaded by the model's own init; the checkpoint releases to fp32."""
    from mmengine.config import Config
    from internvl import InternViT
    arch = dict(Config.fromfile(str(CONFIG)).model.backbone.arch)
    arch.pop('_delete_', None)
    vit = InternViT(arch)
    torch.save({'module': vit.state_dict()}, tmp_path / 'vit.pth')
    work = tmp_path / 'work'
    train(work, data, 'strategy.zero_optimization.stage=3', 'strategy.bf16.enabled=True',
          'strategy.inputs_to_half=[inputs]', 'strategy.config.data_types.buffer_dtype=bf16',
          'optim_wrapper.paramwise_cfg.layer_decay_rate=0.9', f'model.backbone.pretrained={tmp_path / "vit.pth"}',
          'train_cfg.max_iters=10', 'train_cfg.val_interval=10')
    recorded = losses(work)
    assert len(recorded) == 10 and all(torch.isfinite(torch.tensor(v)) for v in recorded.values())
    assert recorded[10] < recorded[1]

    groups = json.loads((work / 'param_groups.json').read_text())
    depth = arch['num_layers']
    assert sorted({g['layer_id'] for g in groups}) == list(range(depth + 2))
    top = max(g['lr'] for g in groups)
    for g in groups:
        assert g['lr'] == pytest.approx(top * 0.9 ** (depth + 1 - g['layer_id']))
    assert {g['weight_decay'] for g in groups} == {0.0, 0.01}

    released = tmp_path / 'released.pth'
    first = work / 'iter_6.pth'
    from internvl_mmlab.engine.release import convert_deepspeed_checkpoint
    convert_deepspeed_checkpoint(first, released)
    state = torch.load(released, map_location='cpu', weights_only=False)['state_dict']
    assert set(state) >= {f'backbone.vit.{k}' for k in vit.state_dict()}
    # after 6 small warm-up steps the backbone is still close to the pretrained weights, far from a fresh init
    fresh = InternViT(arch).state_dict()
    key = 'blocks.2.mlp.fc1.weight'
    assert (state[f'backbone.vit.{key}'] - vit.state_dict()[key]).abs().max() < 0.01
    assert (fresh[key] - vit.state_dict()[key]).abs().max() > 0.05


@pytest.mark.slow
def release_and_test(src: Path, dst: Path, config: Path, data: Path, work_dir: Path) -> float:
    """tools/convert_checkpoint.py, then tools/test.py on the release with the plain Runner -> mIoU."""
    result = subprocess.run([sys.executable, str(REPO / 'tools' / 'convert_checkpoint.py'), str(src), str(dst)],
                            capture_output=True, text=True, env=env(), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    test = subprocess.run([sys.executable, str(REPO / 'tools' / 'test.py'), str(config), str(dst),
                           '--work-dir', str(work_dir), '--cfg-options', 'runner_type=Runner',
                           'strategy=None', f'test_dataloader.dataset.data_root={data}'],
                          capture_output=True, text=True, env=env(), cwd=REPO, timeout=600)
    assert test.returncode == 0, test.stdout[-3000:] + test.stderr[-3000:]
    return float(re.search(r'metrics: .*mIoU: ([\d.]+)', test.stdout).group(1))


@pytest.mark.slow
def test_released_checkpoint_evaluates_like_the_run(zero2_two_processes, data, tmp_path):
    src = zero2_two_processes / 'iter_6.pth'
    assert src.is_dir()
    dst = tmp_path / 'released.pth'
    miou = release_and_test(src, dst, CONFIG, data, tmp_path / 'test')
    ckpt = torch.load(dst, map_location='cpu', weights_only=False)
    assert ckpt['meta']['iter'] == 6 and all(v.dtype != torch.bfloat16 for v in ckpt['state_dict'].values())
    assert miou == pytest.approx(last_val_miou(zero2_two_processes), abs=0.01)
    # the release as safetensors (the destination's suffix decides) evaluates the same
    assert release_and_test(src, tmp_path / 'released.safetensors', CONFIG, data, tmp_path / 'test2') == miou


@pytest.mark.slow
def test_batchnorm_heads_release_evaluates_like_the_two_process_run(data, tmp_path):
    """2-process ZeRO-2 fp32 with BatchNorm heads (the CPU demo): DeepSpeed does not broadcast buffers,
    so without BroadcastBuffersHook each rank validated with its own statistics and the release held
    rank 0's (seen: 39.46 in the run's validation, 40.08 from the release)."""
    work = tmp_path / 'bn'
    train(work, data, 'train_cfg.max_iters=40', 'train_cfg.val_interval=40', 'default_hooks.checkpoint.interval=40',
          'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
          'train_dataloader.persistent_workers=False', 'val_dataloader.persistent_workers=False',
          'param_scheduler.0.end=5', processes=2, config=DEMO_DS)
    validated = last_val_miou(work)
    released = release_and_test(work / 'iter_40.pth', tmp_path / 'released.pth', DEMO_DS, data, tmp_path / 'test')
    assert validated > 5  # it learned something: the comparison is not between two empty predictions
    assert released == pytest.approx(validated, abs=0.05)


@pytest.mark.slow
def test_head_tuning_keeps_a_frozen_bf16_backbone_beside_fp32_heads(data, tmp_path):
    """The head-tuning recipe's precision under ZeRO-1: DeepSpeed optimizes the fp32 FPN and heads only."""
    train(tmp_path, data, 'strategy.zero_optimization.stage=1', 'model.backbone.frozen=True',
          'model.backbone.backbone_dtype=bfloat16', 'train_cfg.max_iters=4', 'train_cfg.val_interval=4')
    groups = json.loads((tmp_path / 'param_groups.json').read_text())
    assert {g['layer_id'] for g in groups} == {5}  # depth 4 + 1: FPN and heads only, no ViT block
    assert all(torch.isfinite(torch.tensor(v)) for v in losses(tmp_path).values())
    released = tmp_path / 'released.pth'
    from internvl_mmlab.engine.release import convert_deepspeed_checkpoint
    convert_deepspeed_checkpoint(tmp_path / 'iter_4.pth', released)
    state = torch.load(released, map_location='cpu', weights_only=False)['state_dict']
    for key in ('backbone.vit.blocks.0.attn.qkv.weight', 'decode_head.conv_seg.weight'):
        assert state[key].dtype == torch.float32  # the frozen bf16 backbone too, which the optimizer never held


@pytest.mark.slow
def test_test_and_infer_take_the_deepspeed_directory_itself(zero2_two_processes, data, tmp_path):
    """tools/test.py and tools/infer.py on the checkpoint directory a DeepSpeed run saves (as the README's
    dist_test.sh line names it), the recipe as it is (its strategy left to training): released in
    memory, nothing written beside it, the same mIoU as the run's own validation."""
    src = zero2_two_processes / 'iter_6.pth'
    before = sorted(p.name for p in zero2_two_processes.rglob('*'))
    test = subprocess.run([sys.executable, str(REPO / 'tools' / 'test.py'), str(CONFIG), str(src),
                           '--work-dir', str(tmp_path / 'test'),
                           '--cfg-options', f'test_dataloader.dataset.data_root={data}'],
                          capture_output=True, text=True, env=env(), cwd=REPO, timeout=600)
    assert test.returncode == 0, test.stdout[-3000:] + test.stderr[-3000:]
    assert 'released in memory' in test.stdout + test.stderr
    miou = float(re.search(r'metrics: .*mIoU: ([\d.]+)', test.stdout).group(1))
    assert miou == pytest.approx(last_val_miou(zero2_two_processes), abs=0.01)
    image = next((data / 'images' / 'validation').glob('*.jpg'))
    infer = subprocess.run([sys.executable, str(REPO / 'tools' / 'infer.py'), str(image), str(CONFIG), str(src),
                            '--out', str(tmp_path / 'overlay.png')],
                           capture_output=True, text=True, env=env(), cwd=REPO, timeout=600)
    assert infer.returncode == 0, infer.stdout[-3000:] + infer.stderr[-3000:]
    assert (tmp_path / 'overlay.png').is_file()
    assert sorted(p.name for p in zero2_two_processes.rglob('*')) == before
