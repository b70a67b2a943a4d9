"""Bad input is refused with a message naming the key, file or iteration: --cfg-options keys, a
non-finite loss."""
import math
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from internvl_mmlab.engine.hooks import NonFiniteLossError, StopOnNonFiniteLossHook
from internvl_mmlab.cli import load_config

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs' / 'seg' / 'demo' / 'upernet_internvit-tiny_1xb8-500it_synthetic-ade-112x112.py'


@pytest.mark.parametrize('option, message', [
    ('model.backbone.drop_path', "no 'drop_path' under model.backbone; did you mean 'drop_path_rate'?"),
    ('train_cfg.max_iter', "no 'max_iter' under train_cfg; did you mean 'max_iters'?"),
    ('model.backbon.arch', "no 'backbon' under model; did you mean 'backbone'?"),
    ('optim_wrapper.optimizer.lr.x', "optim_wrapper.optimizer.lr is float 0.001, it has no 'x'"),
])
def test_cfg_options_refuse_keys_the_config_does_not_have(option, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        load_config(str(CONFIG), cfg_options={option: 1})


def test_cfg_options_accept_existing_and_new_arguments():
    cfg = load_config(str(CONFIG), cfg_options={'train_cfg.max_iters': 7, 'model.backbone.with_cp': True,
                                                'runner_type': 'Runner', 'train_pipeline.0.type': 'LoadImageFromFile',
                                                'model.init_cfg.type': 'Pretrained'})
    assert cfg.train_cfg.max_iters == 7 and cfg.model.backbone.with_cp is True and cfg.runner_type == 'Runner'
    assert cfg.model.init_cfg.type == 'Pretrained'


def test_non_finite_loss_names_the_iteration_and_the_checkpoint_to_keep(tmp_path):
    (tmp_path / 'iter_4.pth').write_bytes(b'x')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_4.pth'))
    hook = StopOnNonFiniteLossHook()
    runner = SimpleNamespace(iter=5, work_dir=str(tmp_path))
    hook.after_train_iter(runner, 0, outputs={'loss': 1.0})
    with pytest.raises(NonFiniteLossError, match=r'iteration 6: the loss is not finite.*iter_4\.pth'):
        hook.after_train_iter(runner, 0, outputs={'loss': math.nan, 'decode.loss_ce': math.nan})


def test_training_stops_on_a_nan_loss_and_saves_nothing(tmp_path):
    from mmseg_custom.datasets import write_synthetic_ade
    data = write_synthetic_ade(tmp_path / 'data', num_train=4, num_val=2, size=112)
    roots = [f'{loader}.dataset.data_root={data}' for loader in ('train_dataloader', 'val_dataloader',
                                                                  'test_dataloader')]
    work = tmp_path / 'work'
    result = subprocess.run(
        [sys.executable, 'tools/train.py', str(CONFIG), '--work-dir', str(work), '--cfg-options', *roots,
         'train_cfg.max_iters=4', 'default_hooks.checkpoint.interval=1', 'train_dataloader.batch_size=2',
         'model.decode_head.loss_decode.loss_weight=nan'], capture_output=True, text=True, cwd=REPO, timeout=900)
    assert result.returncode == 1
    assert 'iteration 1: the loss is not finite' in result.stderr and 'none saved yet' in result.stderr
    assert 'Traceback' not in result.stderr
    assert not list(work.glob('*.pth'))


def test_training_names_a_label_map_outside_the_class_range(tmp_path):
    import numpy as np
    from PIL import Image
    from mmseg_custom.datasets import write_synthetic_ade
    data = write_synthetic_ade(tmp_path / 'data', num_train=2, num_val=1, size=112)
    for label in (data / 'annotations' / 'training').glob('*.png'):
        values = np.array(Image.open(label))
        values[:, ::8] = 200  # in any crop; raw 200 -> 199 after reduce_zero_label: not one of the 150 classes
        Image.fromarray(values).save(label)
    roots = [f'{loader}.dataset.data_root={data}' for loader in ('train_dataloader', 'val_dataloader',
                                                                  'test_dataloader')]
    result = subprocess.run(
        [sys.executable, 'tools/train.py', str(CONFIG), '--work-dir', str(tmp_path / 'work'), '--cfg-options', *roots,
         'train_cfg.max_iters=2', 'train_dataloader.batch_size=2'],
        capture_output=True, text=True, cwd=REPO, timeout=900)
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert re.search(r'ADE_train_0000000\d\.png: label values \[199\] are outside the class range 0\.\.149',
                     result.stderr)
    assert not list((tmp_path / 'work').glob('*.pth'))


def test_training_names_an_unreadable_image(tmp_path):
    from mmseg_custom.datasets import write_synthetic_ade
    data = write_synthetic_ade(tmp_path / 'data', num_train=2, num_val=1, size=112)
    for image in (data / 'images' / 'training').glob('*.jpg'):
        image.write_bytes(image.read_bytes()[:200])  # truncated
    roots = [f'{loader}.dataset.data_root={data}' for loader in ('train_dataloader', 'val_dataloader',
                                                                  'test_dataloader')]
    result = subprocess.run(
        [sys.executable, 'tools/train.py', str(CONFIG), '--work-dir', str(tmp_path / 'work'), '--cfg-options', *roots,
         'train_cfg.max_iters=2', 'train_dataloader.batch_size=1'], capture_output=True, text=True, cwd=REPO,
        timeout=900)
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert re.search(r'error: failed to load image: .*ADE_train_0000000\d\.jpg', result.stderr), result.stderr[-2000:]


@pytest.mark.parametrize('option, message', [
    ('model.backbone.arch=internvit-6b-225px', "error: model: unknown InternViT arch 'internvit-6b-225px'; expected one "
                                               "of ['internvit-300m-448px', 'internvit-300m-448px-p16', 'internvit-6b-224px'"),
    ('model.decode_head.type=UPerHeadd', 'error: model: UPerHeadd is not in the mmseg::model registry'),
])
def test_a_bad_model_argument_is_one_line_before_anything_is_written(tmp_path, option, message):
    from mmseg_custom.datasets import write_synthetic_ade
    data = write_synthetic_ade(tmp_path / 'data', num_train=2, num_val=1, size=64)
    work = tmp_path / 'work'
    result = subprocess.run([sys.executable, 'tools/train.py', str(CONFIG), '--work-dir', str(work), '--cfg-options',
                             option, f'train_dataloader.dataset.data_root={data}',
                             f'val_dataloader.dataset.data_root={data}'],
                            capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 1 and 'Traceback' not in result.stderr, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith(message), result.stderr[-1000:]
    assert not work.exists()
