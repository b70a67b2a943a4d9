"""One precision policy (internvl_mmlab/precision.py): every shipped segmentation recipe, and every
combination of frozen / trained backbone x plain Runner / DeepSpeed x fp32 / bf16, runs a training step
and a validation step (tests/helpers/recipe_step.py, shrunk to the CPU, one process, the recipe's own
precision), the backbone moving exactly when it is trained and computing in the recipe's dtype; and
the DeepSpeed behaviour the fp16 strategy works around. The COCO and adapter recipes:
tests/det/test_det_training.py."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from recipe_runs import run_steps

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted((REPO / 'configs' / 'seg' / 'internvit').glob('*.py')) + sorted((REPO / 'configs' / 'seg' / 'probing').glob('*.py'))
DEMO = REPO / 'configs' / 'seg' / 'demo' / 'upernet_internvit-tiny_1xb8-500it_synthetic-ade-112x112.py'
DEMO_DS = REPO / 'configs' / 'seg' / 'demo' / 'upernet_internvit-tiny_1xb8-500it_synthetic-ade-112x112_ds-zero2.py'
AMP = 'optim_wrapper.type=PortableAmpOptimWrapper;optim_wrapper.dtype=bfloat16'
DS_BF16 = 'strategy.bf16.enabled=True;strategy.inputs_to_half=[inputs];strategy.config.data_types.buffer_dtype=bf16'
FROZEN = 'model.backbone.frozen=True;model.backbone.backbone_dtype=bfloat16'
COMBINATIONS = {  # (frozen, strategy, precision) -> config::options
    (False, 'plain', 'fp32'): f'{DEMO}',
    (False, 'plain', 'bf16'): f'{DEMO}::{AMP}',
    (True, 'plain', 'fp32'): f'{DEMO}::model.backbone.frozen=True',
    (True, 'plain', 'bf16'): f'{DEMO}::{FROZEN};{AMP}',
    (False, 'deepspeed', 'fp32'): f'{DEMO_DS}',
    (False, 'deepspeed', 'bf16'): f'{DEMO_DS}::{DS_BF16}',
    (True, 'deepspeed', 'fp32'): f'{DEMO_DS}::{FROZEN}',
    (True, 'deepspeed', 'bf16'): f'{DEMO_DS}::{FROZEN};{DS_BF16}',
    # a trained backbone with backbone_dtype=bfloat16 when DeepSpeed's bf16 casts the whole model
    (False, 'deepspeed', 'bf16 + backbone_dtype'): f'{DEMO_DS}::model.backbone.backbone_dtype=bfloat16;{DS_BF16}',
}


def expected_vit_dtypes(frozen: bool, strategy: str, precision: str) -> set[str]:
    """The dtypes the ViT's attention computes in, training and validation together: a frozen ViT is
    stored in its backbone_dtype (bf16 in every frozen combination but the plain fp32 one); AMP
    autocasts the training step only (mmengine validates in fp32)."""
    if frozen and (strategy == 'deepspeed' or precision == 'bf16'):
        return {'bfloat16'}
    if strategy == 'plain' and precision == 'bf16':
        return {'bfloat16', 'float32'}
    return {'bfloat16' if 'bf16' in precision else 'float32'}


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    from mmseg_custom.datasets import write_synthetic_ade
    root = tmp_path_factory.mktemp('precision') / 'data'
    write_synthetic_ade(root / 'ade', num_train=4, num_val=2, size=112)
    return root


@pytest.mark.slow
def test_every_combination_trains_a_step(data, tmp_path):
    steps = run_steps(data, tmp_path, list(COMBINATIONS.values()))
    assert len(steps) == len(COMBINATIONS)
    for (frozen, strategy, precision), spec in COMBINATIONS.items():
        name = Path(spec.split('::')[0]).stem + (f'::{spec.split("::")[1]}' if '::' in spec else '')
        step = steps[name]
        assert step.backbone_changed == (not frozen), (frozen, strategy, precision)
        assert step.dtypes['vit'] == expected_vit_dtypes(frozen, strategy, precision), (name, step.dtypes)


@pytest.mark.slow
def test_every_shipped_recipe_trains_a_step(data, tmp_path):
    steps = run_steps(data, tmp_path, [str(p) for p in RECIPES])
    assert sorted(steps) == sorted(p.stem for p in RECIPES)
    for path in RECIPES:
        step = steps[path.stem]
        assert step.backbone_changed == ('-frozen' not in path.name), path.name
        assert step.loss_scale is None, path.name  # fp32 and bf16 scale no loss


def deepspeed_update(precision: str, clipping: float, port: int) -> float:
    env = {**os.environ, 'CUDA_VISIBLE_DEVICES': '', 'MASTER_PORT': str(port),
           'PYTHONPATH': os.pathsep.join([str(REPO), str(REPO / 'tests' / 'helpers')])}
    result = subprocess.run([sys.executable, str(REPO / 'tests' / 'helpers' / 'deepspeed_clip_step.py'), precision, str(clipping)],
                            capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return float(re.search(r'^UPDATE (\S+)$', result.stdout, re.M).group(1))


@pytest.mark.slow  # four DeepSpeed processes, ~50 s: in the full suite (make test, CI), out of the fast one
def test_fp16_and_bf16_strategies_clip_the_true_gradient():
    """DeepSpeed's fp16 unscales the gradients before clipping them (its loss scale is not part of the
    clip), and bf16 scales no loss: a clip that binds changes the update as it does in fp32. (Its
    ``torch_autocast`` fp16 does not: there the clip acts on the loss-scaled gradients, and an
    overflowing step is skipped without lowering the scale - why the recipes use the full casts.)"""
    fp32, bf16, fp16 = (deepspeed_update(p, 1e-6, 29631 + i) for i, p in enumerate(('fp32', 'bf16', 'fp16')))
    unclipped = deepspeed_update('fp32', 0.0, 29634)
    assert fp32 < unclipped / 2  # the clip binds
    assert bf16 == pytest.approx(fp32, rel=0.05) and fp16 == pytest.approx(fp32, rel=0.05), (fp32, bf16, fp16)


@pytest.mark.parametrize('config, cuda, bf16_gpu, expected', [
    ('det/demo/mask-rcnn_internvit-tiny_1xb4-12e_synthetic-coco-128x128.py', True, True, 'float16'),
    ('seg/demo/upernet_internvit-tiny_1xb8-500it_synthetic-ade-112x112.py', True, True, 'bfloat16'),
    ('seg/demo/upernet_internvit-tiny_1xb8-500it_synthetic-ade-112x112.py', True, False, 'float16'),
    ('det/demo/mask-rcnn_internvit-tiny_1xb4-12e_synthetic-coco-128x128.py', False, False, 'bfloat16'),
])
def test_amp_picks_the_dtype_the_task_kernels_take(monkeypatch, config, cuda, bf16_gpu, expected):
    """--amp: fp16 for detection on a GPU (mmcv's RoIAlign / deformable attention have no bf16 kernel),
    bf16 for segmentation where the GPU has it, bf16 on the CPU."""
    import torch

    from internvl_mmlab.cli import apply_amp, load_config
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda *a, **k: bf16_gpu)
    cfg = load_config(str(REPO / 'configs' / config))
    assert apply_amp(cfg, cuda=cuda) == expected
    assert cfg.optim_wrapper.type == 'PortableAmpOptimWrapper' and cfg.optim_wrapper.dtype == expected


def test_amp_is_refused_for_a_deepspeed_recipe_in_one_line(tmp_path):
    """The strategy sets a DeepSpeed recipe's precision: --amp would replace its DeepSpeedOptimWrapper."""
    config = REPO / 'configs' / 'det' / 'internvit' / 'mask-rcnn_internvit-6b-224px-frozen_8xb2-1x_coco.py'
    result = subprocess.run([sys.executable, 'tools/train.py', str(config), '--amp', '--work-dir', str(tmp_path / 'w')],
                            capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith('error: --amp does not apply to a DeepSpeed recipe')
