"""End to end on the embedded synthetic data: tools/train.py, then tools/test.py, tools/infer.py and
mmseg's own MMSegInferencer on the trained checkpoint."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs' / 'seg' / 'demo' / 'upernet_internvit-tiny_1xb8-500it_synthetic-ade-112x112.py'
# Predicting the background class everywhere scores about 14 mIoU over the 6 classes present
# (wall IoU ~85 / 6); a model that learned the shapes scores far above that.
MIN_MIOU = 40.0


def run(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_train_then_test_learns(tmp_path):
    from mmseg_custom.datasets import write_synthetic_ade
    data = write_synthetic_ade(tmp_path / 'data', num_train=120, num_val=20, size=112)
    work = tmp_path / 'work'
    roots = [f'{loader}.dataset.data_root={data}' for loader in ('train_dataloader', 'val_dataloader',
                                                                  'test_dataloader')]
    run('tools/train.py', str(CONFIG), '--work-dir', str(work), '--cfg-options', *roots,
        'train_cfg.max_iters=300', 'train_cfg.val_interval=300', 'default_hooks.checkpoint.interval=300')
    checkpoint = work / 'iter_300.pth'
    assert checkpoint.is_file()

    result = run('tools/test.py', str(CONFIG), str(checkpoint), '--work-dir', str(work / 'test'),
                 '--show-dir', str(tmp_path / 'show'), '--out', str(tmp_path / 'pred'), '--cfg-options', *roots)
    miou = float(re.search(r'metrics: .*mIoU: ([\d.]+)', result.stdout).group(1))
    assert miou > MIN_MIOU, result.stdout[-2000:]
    assert len(list((tmp_path / 'show').rglob('*.png'))) == 20  # painted predictions beside the ground truth
    assert len(list((tmp_path / 'pred').glob('ADE_val_*.png'))) == 20  # predicted label maps

    overlay = tmp_path / 'overlay.png'
    image = data / 'images' / 'validation' / 'ADE_val_00000001.jpg'
    labels = data / 'annotations' / 'validation' / 'ADE_val_00000001.png'
    run('tools/infer.py', str(image), str(CONFIG), str(checkpoint), '--gt', str(labels), '--out', str(overlay),
        '--scale', '2')
    import numpy as np
    from PIL import Image
    picture = np.asarray(Image.open(overlay).convert('RGB'))
    margin, top = 6, 26  # image | ground truth | prediction, 224 px each, under their titles
    assert picture.shape[1] == 3 * 224 + 4 * margin and picture.shape[0] > top + 224
    truth, predicted = (picture[top:top + 224, x:x + 224] for x in (2 * margin + 224, 3 * margin + 448))
    assert (truth == predicted).all(axis=-1).mean() > 0.8  # the trained model paints what the labels say

    from mmseg.apis import MMSegInferencer
    inferencer = MMSegInferencer(model=str(CONFIG), weights=str(checkpoint), device='cpu')
    prediction = inferencer(str(image), return_datasamples=True)
    assert tuple(prediction.pred_sem_seg.data.shape[-2:]) == (112, 112)


def test_missing_data_root_is_a_clear_error(tmp_path):
    missing = tmp_path / 'nowhere'
    result = subprocess.run([sys.executable, 'tools/train.py', str(CONFIG), '--work-dir', str(tmp_path / 'w'),
                             '--cfg-options', f'train_dataloader.dataset.data_root={missing}'],
                            capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 1
    assert f"train_dataloader.dataset.data_root = '{missing}' does not exist" in result.stderr
    assert '--cfg-options train_dataloader.dataset.data_root=' in result.stderr
    assert 'Traceback' not in result.stderr


def test_missing_config_is_a_clear_error(tmp_path):
    result = subprocess.run([sys.executable, 'tools/train.py', str(tmp_path / 'nope.py')],
                            capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 1
    assert f'config not found: {tmp_path / "nope.py"}' in result.stderr and 'Traceback' not in result.stderr


def test_published_config_without_ade20k_names_where_it_is_expected(tmp_path):
    config = REPO / 'configs' / 'seg' / 'internvit' / 'linear_internvit-6b-224px-frozen_8xb2-80k_ade20k-504x504.py'
    result = subprocess.run([sys.executable, str(REPO / 'tools' / 'train.py'), str(config), '--work-dir',
                             str(tmp_path)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 1
    assert "data_root = 'data/ade/ADEChallengeData2016' does not exist" in result.stderr
    assert 'ADEChallengeData2016 folder' in result.stderr


def test_a_run_shorter_than_the_logger_interval_logs_its_iterations(tmp_path):
    """The demo logs every 50 iterations; a 10-iteration run of it logs every one (mmengine alone would
    log none)."""
    from mmseg_custom.datasets import write_synthetic_ade
    data = write_synthetic_ade(tmp_path / 'data', num_train=4, num_val=2, size=112)
    roots = [f'{loader}.dataset.data_root={data}' for loader in ('train_dataloader', 'val_dataloader')]
    result = run('tools/train.py', str(CONFIG), '--work-dir', str(tmp_path / 'work'), '--cfg-options', *roots,
                 'train_cfg.max_iters=10', 'train_cfg.val_interval=10', 'default_hooks.checkpoint.interval=10',
                 'train_dataloader.batch_size=2')
    log = result.stdout + result.stderr
    assert 'logging every 1 iterations: the run has 10, fewer than the logger interval 50' in log
    assert re.search(r'Iter\(train\) \[\s*1/10\]', log) and re.search(r'Iter\(train\) \[10/10\]', log), log[-3000:]
