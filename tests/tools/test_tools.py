"""tools/test.py and tools/infer.py load checkpoints strictly (missing / unexpected / mis-shaped
weights are an error listing them, --non-strict restores mmengine's warning); infer.py takes
--cfg-options; the launchers find the project's .venv by themselves."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs' / 'seg' / 'demo' / 'upernet_internvit-tiny_1xb8-500it_synthetic-ade-112x112.py'
DET_CONFIG = REPO / 'configs' / 'det' / 'demo' / 'mask-rcnn_internvit-tiny_1xb4-12e_synthetic-coco-128x128.py'


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


@pytest.fixture(scope='module')
def run_checkpoint(tmp_path_factory):
    """A checkpoint as mmengine's Runner saves one of our runs: the detection demo's model (no cls
    token), the run's config text in meta['cfg'], the message hub's HistoryBuffers pickled beside."""
    from mmengine.config import Config
    from mmengine.logging import MessageHub
    from mmengine.registry import DefaultScope
    import mmdet_custom  # noqa: F401
    from mmdet.registry import MODELS
    cfg = Config.fromfile(str(DET_CONFIG))
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
    hub = MessageHub.get_instance('run_checkpoint')
    hub.update_scalar('train/loss', 1.0)
    path = tmp_path_factory.mktemp('run') / 'epoch_12.pth'
    torch.save({'meta': {'cfg': cfg.pretty_text, 'epoch': 12}, 'state_dict': model.state_dict(),
                'message_hub': hub.state_dict()}, path)
    return path, model, cfg.model.backbone.arch.to_dict()


def test_a_runs_checkpoint_feeds_convert_and_extract_features(run_checkpoint, tmp_path):
    """convert_checkpoint reads the arch from the config the run saved (no --arch), extract_features reads
    the pickled .pth through the same allowlist tools/test.py uses; the converted vision tower equals the
    detector's, and the outputs are readable by the group as a plain open makes them."""
    from internvl import InternViT
    from internvl.checkpoint import read_checkpoint_arch
    path, model, arch = run_checkpoint
    out = tmp_path / 'vit.safetensors'
    old_mask = os.umask(0o022)
    try:
        result = tool('tools/convert_checkpoint.py', str(path), str(out))
        assert result.returncode == 0, result.stderr[-2000:]
        assert 'arch and window_size, global_attn_indexes, use_cls_token from the config of the run' in result.stderr
        assert out.stat().st_mode & 0o777 == 0o644
        assert read_checkpoint_arch(out) == InternViT(arch, use_cls_token=False).arch
        vit = InternViT.from_pretrained(out).eval()
        assert vit.cls_token is None
        images = torch.randn(1, 3, 128, 128)
        with torch.no_grad():
            torch.testing.assert_close(vit(images)[-1], model.backbone.vit.eval()(images)[-1])

        images_dir = tmp_path / 'images'
        images_dir.mkdir()
        from PIL import Image
        Image.new('RGB', (64, 48), (10, 200, 30)).save(images_dir / 'a.png')
        features = tmp_path / 'features.npy'
        result = tool('tools/extract_features.py', str(path), str(images_dir), str(features))
        assert result.returncode == 0, result.stderr[-2000:]
        assert features.stat().st_mode & 0o777 == (tmp_path / 'features.npy.names.txt').stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old_mask)


def test_convert_takes_an_arch_dict_or_a_config(run_checkpoint, tmp_path):
    import json
    path, _, arch = run_checkpoint
    for value in (json.dumps(arch), str(DET_CONFIG)):
        result = tool('tools/convert_checkpoint.py', str(path), str(tmp_path / 'a.safetensors'), '--arch', value)
        assert result.returncode == 0, result.stderr[-2000:]
    result = tool('tools/convert_checkpoint.py', str(path), str(tmp_path / 'a.safetensors'), '--arch', 'vit-huge')
    assert result.returncode == 2 and "'vit-huge' is neither a preset" in result.stderr


def test_known_harmless_notices_are_silenced_and_real_warnings_still_show():
    """--help and an import of the OpenMMLab layer print nothing of DeepSpeed's CPU notice, mmengine's
    pkg_resources deprecations or registry-scope workaround (internvl/utils/quiet.py); another warning
    from the same libraries' categories still prints."""
    result = tool('tools/train.py', '--help')
    assert result.returncode == 0 and result.stderr == '', result.stderr[-2000:]
    code = ('import warnings, internvl_mmlab, mmdet_custom\n'
            'from mmengine.registry import FUNCTIONS\n'
            'with FUNCTIONS.switch_scope_and_registry("mmdet") as functions:\n'  # the lookup dataloaders make
            '    functions.get("pseudo_collate")\n'
            'warnings.warn("a real warning")\n')
    result = tool('-c', code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'a real warning' in result.stderr
    for noise in ('pkg_resources', 'Setting accelerator to CPU', 'Failed to search registry'):
        assert noise not in result.stderr + result.stdout


def test_a_wrong_image_or_a_forgotten_process_count_is_one_line(setup, tmp_path):
    bad = tmp_path / 'not_an_image.png'
    bad.write_text('x')
    _, good, _, _ = setup
    result = tool('tools/infer.py', str(bad), str(CONFIG), str(good), '--out', str(tmp_path / 'o.png'))
    assert result.returncode == 1 and result.stderr.strip().splitlines() == [
        f"error: {bad} is not an image PIL can read (cannot identify image file '{bad}')"]
    result = subprocess.run(['bash', 'tools/dist_train.sh', str(CONFIG), '--cpu'], capture_output=True, text=True,
                            cwd=REPO)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "error: dist_train.sh: GPUS must be the number of processes per node (a positive integer), got '--cpu'; "
        "usage: tools/dist_train.sh CONFIG GPUS [train.py args...]"]


def test_a_node_waiting_for_a_missing_peer_says_so_and_gives_up(tmp_path):
    env = {**os.environ, 'NNODES': '2', 'NODE_RANK': '1', 'PORT': '29977', 'RDZV_TIMEOUT': '3'}
    result = subprocess.run(['bash', 'tools/dist_train.sh', str(CONFIG), '1', '--cpu'], capture_output=True,
                            text=True, cwd=REPO, env=env, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0
    assert lines[0] == ('dist_train.sh: node 1 of 2 waits for all 2 nodes at 127.0.0.1:29977 (gives up after 3s; '
                        'RDZV_TIMEOUT sets it)')
    assert lines[-1].startswith('error: dist_train.sh: node 1 of 2 stopped') and 'within 3s' in lines[-1]
