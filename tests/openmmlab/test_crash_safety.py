"""Training survives SIGKILL: checkpoints are atomic, --resume skips a truncated latest checkpoint (naming
it) and refuses a work dir of corrupt ones, and a run killed at a random moment ends with the weights of
an uninterrupted run (iteration and epoch loops, loader workers, 1 and 2 processes, plain Runner and
DeepSpeed, CPU, fixed seed)."""
import os
import random
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
import torch

from mmengine.model import BaseModel
from mmengine.registry import DATASETS, MODELS

from internvl_mmlab.engine.checkpoint import checkpoint_problem, resumable_checkpoint

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs' / 'seg' / 'demo' / 'upernet_internvit-tiny_1xb8-500it_synthetic-ade-112x112.py'
DS_CONFIG = REPO / 'configs' / 'seg' / 'demo' / 'upernet_internvit-tiny_1xb8-500it_synthetic-ade-112x112_ds-zero2.py'
DET_CONFIG = REPO / 'configs' / 'det' / 'demo' / 'mask-rcnn_internvit-tiny_1xb4-12e_synthetic-coco-128x128.py'
ITERS = 12  # segmentation: 12 iterations, a checkpoint every 2
EPOCHS = 3  # detection: 3 epochs of 4 iterations, a checkpoint each


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    from mmseg_custom.datasets import write_synthetic_ade
    return write_synthetic_ade(tmp_path_factory.mktemp('crash') / 'data', num_train=16, num_val=2, size=112)


@pytest.fixture(scope='module')
def coco(tmp_path_factory):
    from mmdet_custom.datasets import write_synthetic_coco
    return write_synthetic_coco(tmp_path_factory.mktemp('crash') / 'coco', num_train=8, num_val=2, size=64)


def command(config: Path, work: Path, data: Path, resume: bool = False, processes: int = 1) -> list[str]:
    """tools/train.py (or dist_train.sh on the CPU) on the short schedule."""
    roots = [f'{split}_dataloader.dataset.data_root={data}/' for split in ('train', 'val', 'test')]
    if config == DET_CONFIG:  # the epoch loop, with 2 persistent workers
        ann = f'{data}/annotations/instances_val2017.json'
        schedule = [f'train_cfg.max_epochs={EPOCHS}', f'train_cfg.val_interval={EPOCHS * 10}',
                    f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}',
                    'train_dataloader.num_workers=2', 'train_dataloader.persistent_workers=True',
                    'default_hooks.checkpoint.interval=1', 'param_scheduler=[]']
        if processes > 1:
            schedule.append('train_dataloader.batch_size=1')
    else:
        schedule = [f'train_cfg.max_iters={ITERS}', f'train_cfg.val_interval={ITERS * 10}',
                    'default_hooks.checkpoint.interval=2', 'train_dataloader.batch_size=2']
    options = ['--work-dir', str(work), *(['--resume'] if resume else []), '--cfg-options', *roots, *schedule,
               'default_hooks.checkpoint.max_keep_ckpts=10', 'default_hooks.logger.interval=1']
    if processes == 1:
        return [sys.executable, 'tools/train.py', str(config), *options]
    return ['bash', 'tools/dist_train.sh', str(config), str(processes), '--cpu', *options]


def environment() -> dict:
    return {**os.environ, 'PYTHONPATH': str(REPO), 'PORT': '29563', 'PYTHON': sys.executable}


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=900, env=environment())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def final_name(config: Path) -> str:
    return f'epoch_{EPOCHS}.pth' if config == DET_CONFIG else f'iter_{ITERS}.pth'


def final_weights(work: Path, config: Path) -> dict[str, torch.Tensor]:
    final = work / final_name(config)
    if final.is_dir():  # DeepSpeed: the module's weights in the model-states file
        return torch.load(next(final.glob('*model_states.pt')), weights_only=False)['module']
    return torch.load(final, weights_only=False)['state_dict']


def kill_at_random(cmd: list[str], work: Path, config: Path, seed: int) -> None:
    """Start training, wait for a random checkpoint, then SIGKILL it a random fraction of a second later
    (in an iteration, or in the middle of writing the next checkpoint)."""
    rng = random.Random(seed)
    after = f'epoch_{rng.choice([1, 2])}.pth' if config == DET_CONFIG else f'iter_{rng.choice([2, 4])}.pth'
    process = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=environment(), start_new_session=True)
    deadline = time.time() + 600
    while not (work / after).exists():
        assert process.poll() is None and time.time() < deadline, 'training ended before it could be killed'
        time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 1.5))
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (work / final_name(config)).exists(), 'killed too late: the run had finished'


@pytest.mark.slow
@pytest.mark.parametrize('config, processes', [(CONFIG, 1), (CONFIG, 2), (DS_CONFIG, 1), (DET_CONFIG, 1),
                                               (DET_CONFIG, 2)],
                         ids=['iter-loop', 'iter-loop-2proc', 'iter-loop-deepspeed', 'epoch-loop-2workers',
                              'epoch-loop-2workers-2proc'])
def test_killed_run_resumes_to_the_uninterrupted_weights(data, coco, tmp_path, config, processes):
    """SIGKILL at a random moment, then --resume: the final weights equal the uninterrupted run's bit for
    bit - the iteration loop (which moves its sampler instead of reloading the skipped batches) and the
    epoch loop with persistent workers (whose restarted workers used to replay epoch 0's augmentation)."""
    root = coco if config == DET_CONFIG else data
    run(command(config, tmp_path / 'whole', root, processes=processes))
    killed = tmp_path / 'killed'
    kill_at_random(command(config, killed, root, processes=processes), killed, config,
                   seed=zlib.crc32(f'{config.name}{processes}'.encode()))
    resumed = run(command(config, killed, root, resume=True, processes=processes))
    log = resumed.stdout + resumed.stderr
    assert 'resumed epoch: ' in log, log[-3000:]  # it resumed, it did not restart
    if config != DET_CONFIG:  # and loaded no skipped batch
        assert 'Moved the sampler to iteration' in log and 'Advance dataloader' not in log, log[-3000:]
    expected, got = final_weights(tmp_path / 'whole', config), final_weights(killed, config)
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected), [k for k in expected
                                                                    if not torch.equal(expected[k], got[k])][:5]


def test_a_truncated_latest_checkpoint_is_named_and_skipped(tmp_path, capsys):
    for step in (2, 4):
        torch.save({'state_dict': {'w': torch.full((64, 64), float(step))}}, tmp_path / f'iter_{step}.pth')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_4.pth'))
    assert resumable_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_4.pth')
    data = (tmp_path / 'iter_4.pth').read_bytes()
    (tmp_path / 'iter_4.pth').write_bytes(data[:len(data) // 2])
    assert 'truncated or corrupt' in checkpoint_problem(str(tmp_path / 'iter_4.pth'))
    assert resumable_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_2.pth')
    assert f'cannot resume from {tmp_path / "iter_4.pth"}: iter_4.pth is truncated or corrupt' in capsys.readouterr().out
    (tmp_path / 'iter_2.pth.tmp').write_bytes(b'half')  # an interrupted write is never a candidate
    assert resumable_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_2.pth')


@MODELS.register_module(force=True)
class CrashSafetyToyModel(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='loss'):
        return {'loss': self.fc(torch.stack(inputs)).square().mean()}


@DATASETS.register_module(force=True)
class CrashSafetyToyDataset(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> dict:
        return dict(inputs=torch.full((2,), float(index)))


@pytest.mark.parametrize('runner_type, strategy', [
    ('CrashSafeRunner', None),
    # FlexibleRunner's SingleDeviceStrategy (and DDPStrategy, its subclass) saves through its own import of
    # mmengine's save_checkpoint: a patch of the Runner's never reached it
    ('CrashSafeRunner', dict(type='SingleDeviceStrategy')),
])
def test_checkpoints_are_written_under_a_temporary_name_first(tmp_path, monkeypatch, runner_type, strategy):
    from mmengine.config import Config
    from mmengine.registry import RUNNERS
    import internvl_mmlab  # noqa: F401  (registers the runners)
    written = []
    real_replace = os.replace
    monkeypatch.setattr(os, 'replace', lambda src, dst: written.append((Path(src).name, Path(dst).name)) or
                        real_replace(src, dst))
    cfg = Config(dict(
        runner_type=runner_type, model=dict(type='CrashSafetyToyModel'), work_dir=str(tmp_path), strategy=strategy,
        train_dataloader=dict(dataset=dict(type='CrashSafetyToyDataset'), batch_size=2, collate_fn=dict(type='pseudo_collate'),
                              sampler=dict(type='DefaultSampler', shuffle=False)),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)), train_cfg=dict(by_epoch=True, max_epochs=1),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)), env_cfg=dict(dist_cfg=dict(backend='gloo')),
        default_scope='mmseg'))  # a runner leaves its scope as the current one: the one the other tests expect
    runner = RUNNERS.build(cfg)
    assert type(runner).__name__ == ('CrashSafeFlexibleRunner' if strategy else 'CrashSafeRunner')
    runner.train()
    assert ('epoch_1.pth.tmp', 'epoch_1.pth') in written
    assert checkpoint_problem(str(tmp_path / 'epoch_1.pth')) is None and not (tmp_path / 'epoch_1.pth.tmp').exists()
    assert (tmp_path / 'last_checkpoint').read_text().strip() == str(tmp_path / 'epoch_1.pth')


def test_resume_where_every_checkpoint_is_corrupt_is_one_clear_error(tmp_path, data):
    """Each corrupt checkpoint is named, then the run stops: nothing resumes from a corrupt file (mmengine
    would take last_checkpoint's target), nothing is overwritten."""
    from internvl_mmlab.errors import NothingToResumeError
    for step in (2, 4):
        (tmp_path / f'iter_{step}.pth').write_bytes(b'PK\x03\x04 not a checkpoint')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_4.pth'))
    with pytest.raises(NothingToResumeError, match='no checkpoint in .* is complete'):
        resumable_checkpoint(str(tmp_path))
    result = subprocess.run(command(CONFIG, tmp_path, data, resume=True), capture_output=True, text=True,
                            cwd=REPO, timeout=600, env=environment())
    assert result.returncode == 1 and 'Traceback' not in result.stderr, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith('error: --resume: no checkpoint in')
    assert (tmp_path / 'iter_4.pth').read_bytes() == b'PK\x03\x04 not a checkpoint'


def test_resume_in_an_empty_work_dir_starts_afresh(tmp_path):
    assert resumable_checkpoint(str(tmp_path)) is None
