"""One precision policy: every shipped recipe, and every combination of frozen / trained backbone x
plain Runner / DeepSpeed x fp32 / bf16, runs a training step (tests/recipe_step.py, shrunk to the CPU,
one process), the backbone moving exactly when it is trained."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / 'configs' / 'internvit').glob('*.py'))
DEMO = REPO / 'configs' / 'demo' / 'upernet_internvit-tiny_1xb8-500it_synthetic-ade-112x112.py'
DEMO_DS = REPO / 'configs' / 'demo' / 'upernet_internvit-tiny_1xb8-500it_synthetic-ade-112x112_ds-zero2.py'
AMP = 'optim_wrapper.type=AmpOptimWrapper;optim_wrapper.dtype=bfloat16'
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


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    from mmseg_custom.datasets import write_synthetic_ade
    root = tmp_path_factory.mktemp('precision') / 'data'
    write_synthetic_ade(root / 'ade', num_train=4, num_val=2, size=112)
    return root


def run_steps(data: Path, work: Path, specs: list[str]) -> dict[str, tuple[float, bool, str]]:
    env = {**os.environ, 'CUDA_VISIBLE_DEVICES': '', 'PYTHONPATH': os.pathsep.join([str(REPO), str(REPO / 'tests')])}
    result = subprocess.run([sys.executable, str(REPO / 'tests' / 'recipe_step.py'), str(data), str(work), *specs],
                            capture_output=True, text=True, env=env, cwd=REPO, timeout=3000)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    steps = re.findall(r'^STEP (\S+) loss=(\S+) backbone_changed=(\w+) dtype=(\S+)$', result.stdout, re.M)
    return {name: (float(loss), changed == 'True', dtype) for name, loss, changed, dtype in steps}


@pytest.mark.slow
def test_every_combination_trains_a_step(data, tmp_path):
    steps = run_steps(data, tmp_path, list(COMBINATIONS.values()))
    assert len(steps) == len(COMBINATIONS)
    for (frozen, strategy, precision), spec in COMBINATIONS.items():
        name = Path(spec.split('::')[0]).stem + (f'::{spec.split("::")[1]}' if '::' in spec else '')
        loss, changed, _ = steps[name]
        assert changed == (not frozen), (frozen, strategy, precision)


@pytest.mark.slow
def test_every_shipped_recipe_trains_a_step(data, tmp_path):
    steps = run_steps(data, tmp_path, [str(p) for p in RECIPES])
    assert sorted(steps) == sorted(p.stem for p in RECIPES)
    for path in RECIPES:
        loss, changed, _ = steps[path.stem]
        assert changed == ('-frozen' not in path.name), path.name
