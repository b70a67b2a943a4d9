"""Training that survives being killed (SIGKILL, a lost node) and resumes to the same weights.

1. Checkpoints are atomic. A file checkpoint is written as ``<name>.tmp`` and renamed; a DeepSpeed
   checkpoint directory is written as ``<name>.tmp/`` and renamed once every rank has written its part.
   A checkpoint under its own name is therefore complete, and mmengine writes ``last_checkpoint``
   only after it. ``install()`` patches mmengine's two save paths (Runner, DeepSpeedStrategy).
2. ``resumable_checkpoint(work_dir)`` picks what ``--resume`` resumes: ``last_checkpoint``'s target and
   every ``iter_N`` / ``epoch_N`` of the work dir, newest first, each checked (every zip member's CRC;
   a DeepSpeed directory's model-states file). A bad one is reported by name and the previous one used.
3. ``ResumeRNGHook`` saves every rank's torch RNG state (CPU and CUDA) in each checkpoint and each rank
   restores its own before the first resumed iteration. The data order and each sample's augmentation
   come from the resumable loops (``resumable_loops.py``: per-sample seeding, the sampler moved to the
   iteration), so a resumed run then continues exactly as an uninterrupted one would (dropout and drop
   path included).
"""
import functools
import logging
import os
import os.path as osp
import re
import shutil
import zipfile
from typing import Any, Callable, Optional

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = re.compile(r'^(iter|epoch)_(\d+)\.pth$')


def _atomic_file_save(save: Callable) -> Callable:
    @functools.wraps(save)
    def atomic_save(checkpoint: dict, filename: Any, *args: Any, **kwargs: Any) -> None:
        if not isinstance(filename, str) or '://' in filename:  # remote backends: as mmengine does it
            return save(checkpoint, filename, *args, **kwargs)
        tmp = filename + '.tmp'
        save(checkpoint, tmp, *args, **kwargs)
        os.replace(tmp, filename)
    atomic_save.atomic = True
    return atomic_save


def _barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def _is_rank0() -> bool:
    return not (torch.distributed.is_available() and torch.distributed.is_initialized()) or \
        torch.distributed.get_rank() == 0


def rng_state() -> dict:
    state = {'cpu': torch.get_rng_state()}
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def all_ranks_rng_state() -> list[dict]:
    """Every rank's ``rng_state()``, by rank (a collective: every rank must call it)."""
    from mmengine.dist import all_gather_object, get_world_size
    return all_gather_object(rng_state()) if get_world_size() > 1 else [rng_state()]


def own_rng_state(saved: Any) -> Optional[dict]:
    """This rank's state in what a checkpoint saved: the per-rank list (rank 0's when the run had fewer
    ranks), or the one state older checkpoints hold."""
    if not isinstance(saved, list):
        return saved
    from mmengine.dist import get_rank
    rank = get_rank()
    return saved[rank] if rank < len(saved) else saved[0]


def restore_rng_state(state: dict) -> None:
    torch.set_rng_state(state['cpu'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def _atomic_directory_save(save: Callable) -> Callable:
    """DeepSpeedStrategy.save_checkpoint, atomic; it never calls the save hooks, so the RNG state is
    added to its extra state here."""
    @functools.wraps(save)
    def atomic_save(self: Any, filename: str, *args: Any, **kwargs: Any) -> None:
        if kwargs.get('extra_ckpt') is not None:
            kwargs['extra_ckpt']['rng_state'] = all_ranks_rng_state()
        tmp = filename + '.tmp'
        if _is_rank0() and osp.isdir(tmp):
            shutil.rmtree(tmp)  # the remains of a save that was killed
        _barrier()
        save(self, tmp, *args, **kwargs)
        _barrier()
        if _is_rank0():
            if osp.isdir(filename):
                shutil.rmtree(filename)
            os.replace(tmp, filename)
        _barrier()
    atomic_save.atomic = True
    return atomic_save


def install() -> None:
    """Make mmengine's checkpoint writes atomic (idempotent)."""
    import mmengine.runner.runner as runner_module
    if not getattr(runner_module.save_checkpoint, 'atomic', False):
        runner_module.save_checkpoint = _atomic_file_save(runner_module.save_checkpoint)
    try:
        from mmengine._strategy.deepspeed import DeepSpeedStrategy
    except ImportError:  # DeepSpeed not installed
        return
    if not getattr(DeepSpeedStrategy.save_checkpoint, 'atomic', False):
        DeepSpeedStrategy.save_checkpoint = _atomic_directory_save(DeepSpeedStrategy.save_checkpoint)
        DeepSpeedStrategy.resume = _keep_rng_state(DeepSpeedStrategy.resume)


def _keep_rng_state(resume: Callable) -> Callable:
    """DeepSpeedStrategy.resume, keeping the checkpoint's RNG state for ``ResumeRNGHook`` (it never calls
    the load hooks)."""
    @functools.wraps(resume)
    def resume_keeping_rng(self: Any, *args: Any, **kwargs: Any) -> dict:
        extra = resume(self, *args, **kwargs)
        self.resumed_rng_state = own_rng_state(extra.get('rng_state'))
        return extra
    return resume_keeping_rng


def checkpoint_problem(path: str) -> Optional[str]:
    """Why ``path`` (a checkpoint file or DeepSpeed directory) cannot be resumed from, or None if it can."""
    if osp.isdir(path):
        files = [osp.join(path, f) for f in sorted(os.listdir(path)) if f.endswith('.pt')]
        if not any(f.endswith('model_states.pt') for f in files):
            return 'a DeepSpeed checkpoint directory without its model-states file'
    elif osp.isfile(path):
        files = [path]
    else:
        return 'not found'
    for file in files:
        try:
            with zipfile.ZipFile(file) as archive:
                bad = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            return f'{osp.basename(file)} is truncated or corrupt ({e})'
        if bad is not None:
            return f'{osp.basename(file)}: member {bad} fails its CRC check (corrupt)'
    return None


class NothingToResumeError(RuntimeError):
    """``--resume`` in a work dir whose every checkpoint is truncated or corrupt."""


def resumable_checkpoint(work_dir: str) -> Optional[str]:
    """The newest complete checkpoint of ``work_dir`` (see the module docstring); None when it has no
    checkpoint at all (a fresh start). Every checkpoint there corrupt is ``NothingToResumeError``:
    mmengine would otherwise resume from ``last_checkpoint``, the corrupt file itself."""
    candidates = []
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            target = f.read().strip()
        if target:
            candidates.append(target)
    numbered = [(int(m.group(2)), osp.join(work_dir, name)) for name in os.listdir(work_dir)
                if (m := CHECKPOINT_NAME.match(name))] if osp.isdir(work_dir) else []
    candidates += [path for _, path in sorted(numbered, reverse=True)]
    seen = set()
    for path in candidates:
        if path in seen:
            continue
        seen.add(path)
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        logger.error('cannot resume from %s: %s; trying the previous checkpoint', path, problem)
        print(f'error: cannot resume from {path}: {problem}; trying the previous checkpoint', flush=True)
    if seen:
        raise NothingToResumeError(f'--resume: no checkpoint in {work_dir} is complete ({len(seen)} truncated or '
                                   f'corrupt, listed above); move them away to start afresh')
    return None


@HOOKS.register_module()
class ResumeRNGHook(Hook):
    """Saves every rank's torch RNG state in every checkpoint; after a resume, each rank restores its own
    before the first iteration, so that the random draws of the model (dropout, drop path) continue as
    in an uninterrupted run. (The data's draws need nothing: the resumable loops seed each sample.)
    Only rank 0 writes the checkpoint, so the states are gathered after each iteration, before
    ``CheckpointHook`` saves."""

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._pending: Optional[dict] = None
        self._states: Optional[list[dict]] = None

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Optional[Any] = None,
                         outputs: Optional[Any] = None) -> None:
        from mmengine.dist import get_world_size
        if get_world_size() > 1:
            self._states = all_ranks_rng_state()

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        checkpoint['rng_state'] = self._states or [rng_state()]

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        self._pending = own_rng_state(checkpoint.get('rng_state'))

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Optional[Any] = None) -> None:
        strategy = getattr(runner, 'strategy', None)  # DeepSpeed: kept by its resume (see install)
        if strategy is not None and getattr(strategy, 'resumed_rng_state', None) is not None:
            self._pending, strategy.resumed_rng_state = strategy.resumed_rng_state, None
        if self._pending is None:
            return
        state, self._pending = self._pending, None
        if runner.iter > 0:  # at 0 it came with a load_from checkpoint, not a resume: nothing to continue
            restore_rng_state(state)
