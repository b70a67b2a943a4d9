"""Hooks shared by segmentation and detection."""
from collections import defaultdict
from typing import Any, Optional

import torch
from mmengine.dist import broadcast, get_world_size
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from torch import nn


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
    """Rank 0's buffers to every rank after each training iteration, as DDP does before each forward.

    DeepSpeed keeps each rank's BatchNorm statistics apart, so a validation spread over the ranks
    mixes several models, and the saved checkpoint (rank 0's module) is none of them. Run before the
    checkpoint hook and the validation that follow the iteration, this makes all three the same model."""

    priority = 'ABOVE_NORMAL'

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Optional[Any] = None,
                         outputs: Optional[dict] = None) -> None:
        if get_world_size() > 1:
            broadcast_buffers(runner.model)


class NonFiniteLossError(RuntimeError):
    """Training stopped on a NaN or infinite loss."""


class BadDataError(ValueError):
    """Training stopped on a sample that is wrong (the message names its file)."""


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
