"""No code runs from a checkpoint: a pickle whose payload would create a file is refused, naming the
file and the class, through every way a checkpoint enters (``pretrained=``, ``load_from``,
``tools/test.py``, ``tools/infer.py``, ``tools/convert_checkpoint.py``, ``--resume`` under the plain
Runner and under DeepSpeed, the DeepSpeed release), and the payload never runs. What mmengine's and
DeepSpeed's own checkpoints pickle still loads; a file the user trusts converts with an explicit opt-in."""
import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from internvl import InternViT
from internvl.checkpoint import UnsafeCheckpointError, load_pretrained, load_torch_file

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs' / 'seg' / 'demo' / 'upernet_internvit-tiny_1xb8-500it_synthetic-ade-112x112.py'
DS_CONFIG = REPO / 'configs' / 'seg' / 'demo' / 'upernet_internvit-tiny_1xb8-500it_synthetic-ade-112x112_ds-zero2.py'


class Payload:
    """Unpickling this calls ``os.system('touch MARKER')``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


def evil_checkpoint(path: Path, marker: Path, **extra) -> Path:
    vit = InternViT('internvit-tiny-rms')
    state_dict = {f'backbone.vit.{k}': v for k, v in vit.state_dict().items()}
    torch.save({'meta': {'note': Payload(marker)}, 'state_dict': state_dict, **extra}, path)
    return path


def tool(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, 'PYTHONPATH': str(REPO)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=600)


def assert_refused(result: subprocess.CompletedProcess, evil: Path, marker: Path) -> None:
    assert result.returncode != 0, result.stdout[-2000:]
    assert f'{evil}' in result.stderr and 'refused to unpickle posix.system' in result.stderr, result.stderr[-3000:]
    assert '--trust-pickled-code' in result.stderr
    assert 'Traceback' not in result.stderr, result.stderr[-3000:]
    assert not marker.exists(), 'the payload ran'


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    from mmseg_custom.datasets import write_synthetic_ade
    return write_synthetic_ade(tmp_path_factory.mktemp('safe') / 'data', num_train=4, num_val=2, size=112)


def roots(data: Path) -> list[str]:
    return [f'{loader}.dataset.data_root={data}' for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]


def test_pretrained_refuses_a_payload(tmp_path):
    marker = tmp_path / 'ran'
    evil = evil_checkpoint(tmp_path / 'evil.pth', marker)
    with pytest.raises(UnsafeCheckpointError, match=r'evil\.pth: refused to unpickle posix\.system'):
        load_pretrained(InternViT('internvit-tiny-rms'), evil)
    with pytest.raises(UnsafeCheckpointError):
        InternViT('internvit-tiny-rms', pretrained=str(evil)).init_weights()
    # a Hugging Face folder whose pytorch_model.bin carries the payload
    (tmp_path / 'repo').mkdir()
    torch.save({'x': Payload(marker)}, tmp_path / 'repo' / 'pytorch_model.bin')
    with pytest.raises(UnsafeCheckpointError, match='pytorch_model.bin: refused'):
        load_pretrained(InternViT('internvit-tiny-rms'), tmp_path / 'repo')
    assert not marker.exists()


def test_tools_refuse_a_payload(tmp_path, data):
    marker = tmp_path / 'ran'
    evil = evil_checkpoint(tmp_path / 'evil.pth', marker)
    assert_refused(tool('tools/convert_checkpoint.py', str(evil), str(tmp_path / 'out.safetensors')), evil, marker)
    assert not (tmp_path / 'out.safetensors').exists()
    assert_refused(tool('tools/test.py', str(CONFIG), str(evil), '--work-dir', str(tmp_path / 'test'),
                        '--cfg-options', *roots(data)), evil, marker)
    image = next((data / 'images' / 'validation').glob('*.jpg'))
    assert_refused(tool('tools/infer.py', str(image), str(CONFIG), str(evil), '--out', str(tmp_path / 'o.png')),
                   evil, marker)
    assert_refused(tool('tools/train.py', str(CONFIG), '--work-dir', str(tmp_path / 'load'), '--cfg-options',
                        f'load_from={evil}', 'train_cfg.max_iters=1', *roots(data)), evil, marker)


@pytest.mark.slow
def test_resume_refuses_a_payload(tmp_path, data):
    marker = tmp_path / 'ran'
    work = tmp_path / 'plain'
    work.mkdir()
    evil = evil_checkpoint(work / 'iter_1.pth', marker)
    (work / 'last_checkpoint').write_text(str(evil))
    assert_refused(tool('tools/train.py', str(CONFIG), '--work-dir', str(work), '--resume', '--cfg-options',
                        'train_cfg.max_iters=2', *roots(data)), evil, marker)

    # DeepSpeed: a real checkpoint directory whose model states are swapped for the payload
    ds_work = tmp_path / 'ds'

    def train_ds(max_iters: int, *extra: str) -> subprocess.CompletedProcess:
        return tool('tools/train.py', str(DS_CONFIG), '--work-dir', str(ds_work), *extra, '--cfg-options',
                    f'train_cfg.max_iters={max_iters}', 'train_cfg.val_interval=1',
                    'default_hooks.checkpoint.interval=1', *roots(data))

    result = train_ds(1)
    assert result.returncode == 0, result.stderr[-3000:]
    states = ds_work / 'iter_1.pth' / 'mp_rank_00_model_states.pt'
    torch.save({**torch.load(states, weights_only=False), 'evil': Payload(marker)}, states)
    assert_refused(train_ds(2, '--resume'), states, marker)
    assert_refused(tool('tools/convert_checkpoint.py', str(ds_work / 'iter_1.pth'), str(tmp_path / 'rel.pth')),
                   states, marker)


def test_mmengine_and_deepspeed_classes_load_but_nothing_else(tmp_path):
    import internvl_mmlab  # noqa: F401  (the allowlist of mmengine's and DeepSpeed's checkpoint classes)
    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance('test_safe_loading')
    hub.update_scalar('train/loss', 1.5)
    path = tmp_path / 'iter_1.pth'
    torch.save({'message_hub': hub.state_dict(), 'state_dict': {'w': torch.ones(2)}}, path)
    loaded = load_torch_file(path)
    assert loaded['message_hub']['log_scalars']['train/loss'].current() == 1.5
    # a getattr the message hub does not pickle (reaching past HistoryBuffer's public methods) is refused
    from mmengine.logging import HistoryBuffer

    for name in ('__init__', 'register_statistics'):
        class Reach:
            def __reduce__(self, name=name):
                return getattr, (HistoryBuffer, name)

        torch.save({'x': Reach()}, tmp_path / 'reach.pth')
        with pytest.raises(Exception, match='not allowed'):
            load_torch_file(tmp_path / 'reach.pth')


def test_trusted_file_converts_with_an_explicit_opt_in(tmp_path):
    """A pickle holding a class outside the allowlist (argparse.Namespace) is refused by default and
    converted to safetensors only with --trust-pickled-code; the output then loads without trust."""
    vit = InternViT('internvit-tiny-rms')
    path = tmp_path / 'trusted.pth'
    torch.save({'args': argparse.Namespace(lr=1), 'module': vit.state_dict()}, path)
    refused = tool('tools/convert_checkpoint.py', str(path), str(tmp_path / 'a.safetensors'))
    assert refused.returncode == 1 and 'refused to unpickle argparse.Namespace' in refused.stderr
    converted = tool('tools/convert_checkpoint.py', str(path), str(tmp_path / 'a.safetensors'), '--trust-pickled-code')
    assert converted.returncode == 0, converted.stderr[-3000:]
    model = InternViT('internvit-tiny-rms')
    load_pretrained(model, tmp_path / 'a.safetensors')
    torch.testing.assert_close(model.pos_embed, vit.pos_embed, rtol=0, atol=0)
