"""Hooks shared by segmentation and detection, named in the ``_base_`` runtimes: a NaN loss stops
training before it is saved, a resumed run continues the RNG streams of the one it resumes, and
DeepSpeed's ranks share rank 0's buffers."""
from collections import defaultdict
from typing import Any, Optional

import torch
from mmengine._strategy import DeepSpeedStrategy
from mmengine.dist import all_gather_object, broadcast, get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from torch import nn

from ..errors import NonFiniteLossError


def broadcast_buffers(module: nn.Module, src: int = 0) -> int:
    """Copy every buffer of ``module`` (BatchNorm running statistics, ...) from rank ``src`` to all
    ranks, one flat broadcast per dtype; returns the number of buffers."""
    groups: dict[torch.dtype, list[torch.Tensor]] = defaultdict(list)
    for buffer in module.buffers():
        groups[buffer.dtype].append(buffer)
    for buffers in groups.values():
        flat = torch.cat([b.detach().reshape(-1) for b in buffers])
        broadcast(flat, src=src)
        offset = 0
        for b in buffers:
            b.data.copy_(flat[offset:offset + b.numel()].view_as(b))
            offset += b.numel()
    return sum(len(b) for b in groups.values())


@HOOKS.register_module()
class BroadcastBuffersHook(Hook):
    """Under DeepSpeed, rank 0's buffers to every rank after each training iteration (a no-op under
    any other strategy or runner, so that the runtimes can always name it).

    DeepSpeed keeps each rank's BatchNorm statistics apart, so a validation spread over the ranks
    mixes several models, and the saved checkpoint (rank 0's module) is none of them. Run before the
    checkpoint hook and the validation that follow the iteration, this makes all three the same model."""

    priority = 'ABOVE_NORMAL'

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Optional[Any] = None,
                         outputs: Optional[dict] = None) -> None:
        if get_world_size() > 1 and isinstance(getattr(runner, 'strategy', None), DeepSpeedStrategy):
            broadcast_buffers(runner.model)


@HOOKS.register_module()
class StopOnNonFiniteLossHook(Hook):
    """Stop at the first iteration whose loss is NaN or infinite, naming it and the checkpoint to go back
    to. It runs before the checkpoint hook, so the weights that step corrupted are never saved: the
    latest checkpoint stays the last good one."""

    priority = 'ABOVE_NORMAL'

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Optional[Any] = None,
                         outputs: Optional[dict] = None) -> None:
        loss = (outputs or {}).get('loss')
        if loss is None or bool(torch.isfinite(torch.as_tensor(loss)).all()):
            return
        from mmengine.runner import find_latest_checkpoint
        last = find_latest_checkpoint(runner.work_dir)
        terms = {k: float(v) for k, v in outputs.items() if 'loss' in k and torch.as_tensor(v).numel() == 1}
        raise NonFiniteLossError(
            f'iteration {runner.iter + 1}: the loss is not finite ({terms}); training stopped before anything '
            f'was saved. The last good checkpoint: {last or "none saved yet"} (resume from it with a lower '
            f'learning rate, or check the data of this iteration)')


def rng_state() -> dict:
    state = {'cpu': torch.get_rng_state()}
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def all_ranks_rng_state() -> list[dict]:
    """Every rank's ``rng_state()``, by rank (a collective: every rank must call it)."""
    return all_gather_object(rng_state()) if get_world_size() > 1 else [rng_state()]


def own_rng_state(saved: Any) -> Optional[dict]:
    """This rank's state in what a checkpoint saved: the per-rank list (rank 0's when the run had fewer
    ranks), or the one state older checkpoints hold."""
    if not isinstance(saved, list):
        return saved
    rank = get_rank()
    return saved[rank] if rank < len(saved) else saved[0]


def restore_rng_state(state: dict) -> None:
    torch.set_rng_state(state['cpu'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


@HOOKS.register_module()
class ResumeRNGHook(Hook):
    """Saves every rank's torch RNG state in every checkpoint; after a resume, each rank restores its own
    before the first iteration, so that the random draws of the model (dropout, drop path) continue as
    in an uninterrupted run. (The data's draws need nothing: the resumable loops seed each sample.)
    Only rank 0 writes a file checkpoint, so the states are gathered after each iteration, before
    ``CheckpointHook`` saves. (DeepSpeed's strategy calls no hooks on save and resume;
    ``SafeDeepSpeedStrategy`` does.)"""

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._pending: Optional[dict] = None
        self._states: Optional[list[dict]] = None

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Optional[Any] = None,
                         outputs: Optional[Any] = None) -> None:
        if get_world_size() > 1:
            self._states = all_ranks_rng_state()

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        checkpoint['rng_state'] = self._states or [rng_state()]

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        self._pending = own_rng_state(checkpoint.get('rng_state'))

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Optional[Any] = None) -> None:
        if self._pending is None:
            return
        state, self._pending = self._pending, None
        if runner.iter > 0:  # at 0 it came with a load_from checkpoint, not a resume: nothing to continue
            restore_rng_state(state)
