"""tools/test.py and tools/infer.py load checkpoints strictly (missing / unexpected / mis-shaped
weights are an error listing them, --non-strict restores mmengine's warning); infer.py takes
--cfg-options; the launchers find the project's .venv by themselves."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / 'configs' / 'demo' / 'upernet_internvit-tiny_1xb8-500it_synthetic-ade-112x112.py'


def tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO, timeout=600,
                          env={**os.environ, 'PYTHONPATH': str(REPO)})


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    import mmseg_custom  # noqa: F401
    from mmseg.registry import MODELS
    from mmseg_custom.datasets import write_synthetic_ade
    root = tmp_path_factory.mktemp('tools')
    data = write_synthetic_ade(root / 'data', num_train=2, num_val=2, size=112)
    init_default_scope('mmseg')
    state = MODELS.build(Config.fromfile(str(CONFIG)).model).state_dict()
    from mmseg.datasets import ADE20KDataset
    good = root / 'good.pth'
    torch.save({'meta': {'dataset_meta': ADE20KDataset.METAINFO}, 'state_dict': state}, good)
    no_backbone = root / 'no_backbone.pth'
    torch.save({'state_dict': {k: v for k, v in state.items() if not k.startswith('backbone.vit.')}}, no_backbone)
    wrong_shape = root / 'wrong_shape.pth'
    torch.save({'state_dict': {**state, 'decode_head.conv_seg.weight': torch.zeros(7, 64, 1, 1)}}, wrong_shape)
    return data, good, no_backbone, wrong_shape


def test_test_and_infer_refuse_a_checkpoint_that_is_not_the_model(setup, tmp_path):
    data, good, no_backbone, wrong_shape = setup
    roots = [f'test_dataloader.dataset.data_root={data}']
    image = next((data / 'images' / 'validation').glob('*.jpg'))
    for args in (('tools/test.py', str(CONFIG), str(no_backbone), '--work-dir', str(tmp_path / 't'),
                  '--cfg-options', *roots),
                 ('tools/infer.py', str(image), str(CONFIG), str(no_backbone), '--out', str(tmp_path / 'o.png'))):
        result = tool(*args)
        assert result.returncode == 1, result.stdout[-2000:]
        assert 'no_backbone.pth' in result.stderr and "missing keys ['backbone.vit.blocks.0" in result.stderr
        assert 'Traceback' not in result.stderr
    result = tool('tools/test.py', str(CONFIG), str(wrong_shape), '--work-dir', str(tmp_path / 't'), '--cfg-options',
                  *roots)
    assert result.returncode == 1 and 'decode_head.conv_seg.weight: checkpoint [7, 64, 1, 1] vs model [150, 64, 1, 1]' \
        in result.stderr, result.stderr[-2000:]
    # --non-strict: mmengine's behaviour (a warning, and the evaluation runs)
    result = tool('tools/test.py', str(CONFIG), str(no_backbone), '--non-strict', '--work-dir', str(tmp_path / 'n'),
                  '--cfg-options', *roots)
    assert result.returncode == 0 and 'metrics:' in result.stdout, result.stderr[-2000:]


def test_infer_takes_cfg_options(setup, tmp_path):
    data, good, *_ = setup
    image = next((data / 'images' / 'validation').glob('*.jpg'))
    result = tool('tools/infer.py', str(image), str(CONFIG), str(good), '--out', str(tmp_path / 'o.png'),
                  '--cfg-options', 'model.test_cfg.mode=whole')
    assert result.returncode == 0 and (tmp_path / 'o.png').is_file(), result.stderr[-2000:]
    result = tool('tools/infer.py', str(image), str(CONFIG), str(good), '--out', str(tmp_path / 'p.png'),
                  '--cfg-options', 'model.test_cfg.mode=nonsense')
    assert result.returncode != 0


def test_launchers_use_the_project_venv(tmp_path):
    """With no PYTHON given, tools/python_env.sh picks ROOT/.venv/bin/python when it exists, else python."""
    fake = tmp_path / 'repo'
    (fake / '.venv' / 'bin').mkdir(parents=True)
    (fake / '.venv' / 'bin' / 'python').write_text('#!/bin/sh\n')
    (fake / '.venv' / 'bin' / 'python').chmod(0o755)
    script = f'ROOT={fake}; unset PYTHON; source {REPO}/tools/python_env.sh; echo "$PYTHON"'
    assert subprocess.run(['bash', '-c', script], capture_output=True, text=True).stdout.strip() == \
        str(fake / '.venv' / 'bin' / 'python')
    script = f'ROOT={tmp_path}; unset PYTHON; source {REPO}/tools/python_env.sh; echo "$PYTHON"'
    assert subprocess.run(['bash', '-c', script], capture_output=True, text=True).stdout.strip() == 'python'
    script = f'ROOT={fake}; PYTHON=/usr/bin/python3; source {REPO}/tools/python_env.sh; echo "$PYTHON"'
    assert subprocess.run(['bash', '-c', script], capture_output=True, text=True).stdout.strip() == '/usr/bin/python3'
