"""mmengine's runners with atomic checkpoints, named by the ``_base_`` runtimes (``runner_type``).

A checkpoint is written as ``<name>.tmp`` (a file, or a DeepSpeed directory every rank writes its part
of) and renamed once complete, so a checkpoint under its own name is whole: a run killed while saving
(SIGKILL, a lost node) leaves the previous checkpoint, and mmengine's ``CheckpointHook`` writes
``last_checkpoint`` only after the rename. ``--resume`` then picks the newest complete checkpoint
(``internvl_mmlab.engine.checkpoint.resumable_checkpoint``).

- ``CrashSafeRunner``: mmengine's ``Runner`` (rank 0 saves a file); for a config that names a
  ``strategy`` (DeepSpeed, FSDP: mmengine runs those on its ``FlexibleRunner`` only) it builds a
  ``CrashSafeFlexibleRunner``, so that every config names this one runner;
- ``QuietSetupRunner``: the same, whose console leaves out the setup summary (the log file keeps it);
- ``CrashSafeFlexibleRunner``: mmengine's ``FlexibleRunner``, for every strategy: a DeepSpeed
  directory is renamed by rank 0 after all ranks have written theirs.
"""
import logging
import os
import os.path as osp
import shutil
from typing import Any, Optional

from mmengine._strategy import DeepSpeedStrategy
from mmengine.dist import barrier, is_main_process, master_only
from mmengine.registry import RUNNERS, STRATEGIES
from mmengine.runner import FlexibleRunner, Runner
from mmengine.runner.utils import _get_batch_size


def is_deepspeed_strategy(strategy_type: Any) -> bool:
    """Whether a strategy ``type`` (a registered name or a class) is mmengine's DeepSpeed strategy or a
    subclass of it (``SafeDeepSpeedStrategy``)."""
    cls = STRATEGIES.get(strategy_type) if isinstance(strategy_type, str) else strategy_type
    return isinstance(cls, type) and issubclass(cls, DeepSpeedStrategy)


def _remove(path: str) -> None:
    if osp.isdir(path):
        shutil.rmtree(path)
    elif osp.exists(path):
        os.remove(path)


def _publish(tmp: str, final: str) -> None:
    """``tmp`` renamed to ``final``, replacing a checkpoint of that name (a directory cannot be replaced
    by ``os.replace``, so it is removed first)."""
    if osp.isdir(final):
        shutil.rmtree(final)
    os.replace(tmp, final)


@RUNNERS.register_module()
class CrashSafeRunner(Runner):
    """mmengine's ``Runner`` whose checkpoints are written atomically (module docstring)."""

    @classmethod
    def from_cfg(cls, cfg: Any) -> Any:
        """This runner for ``cfg``, or a ``CrashSafeFlexibleRunner`` when it names a ``strategy``."""
        if cfg.get('strategy'):
            return CrashSafeFlexibleRunner.from_cfg(cfg)
        return super().from_cfg(cfg)

    @master_only
    def save_checkpoint(self, out_dir: str, filename: str, *args: Any, **kwargs: Any) -> None:
        if '://' in str(out_dir):  # a remote backend writes as mmengine does it
            return super().save_checkpoint(out_dir, filename, *args, **kwargs)
        final = osp.join(out_dir, filename)
        _remove(final + '.tmp')  # the remains of a save that was killed
        super().save_checkpoint(out_dir, filename + '.tmp', *args, **kwargs)
        _publish(final + '.tmp', final)


class _SetupSummaryFilter(logging.Filter):
    """The runner's setup summary: environment, the whole config and the hook order."""
    STARTS = ('\n' + '-' * 60 + '\nSystem environment:', 'Config:\n', 'Hooks will be executed in the following order')

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.STARTS)


@RUNNERS.register_module()
class QuietSetupRunner(CrashSafeRunner):
    """``CrashSafeRunner`` whose console leaves out the setup summary (about 700 lines for the tiny demo
    model, before the first result); the log file in the work dir keeps all of it."""

    def build_logger(self, *args: Any, **kwargs: Any) -> Any:
        logger = super().build_logger(*args, **kwargs)
        for handler in logger.handlers:
            if type(handler) is logging.StreamHandler:  # the console (FileHandler is a subclass)
                handler.addFilter(_SetupSummaryFilter())
        return logger


@RUNNERS.register_module()
class CrashSafeFlexibleRunner(FlexibleRunner):
    """mmengine's ``FlexibleRunner`` whose checkpoints (files, DeepSpeed directories) are written
    atomically; every rank calls ``save_checkpoint``, as the strategies need."""

    def __init__(self, *args: Any, strategy: Optional[dict] = None, train_dataloader: Any = None,
                 **kwargs: Any) -> None:
        if isinstance(strategy, dict) and is_deepspeed_strategy(strategy.get('type')):
            # DeepSpeed needs the batch per GPU; mmengine sets it for its own class name only
            strategy = dict(strategy, train_micro_batch_size_per_gpu=(
                1 if train_dataloader is None else _get_batch_size(train_dataloader)))
        super().__init__(*args, strategy=strategy, train_dataloader=train_dataloader, **kwargs)

    def save_checkpoint(self, out_dir: str, filename: str, *args: Any, **kwargs: Any) -> None:
        if '://' in str(out_dir):
            return super().save_checkpoint(out_dir, filename, *args, **kwargs)
        final = osp.join(out_dir, filename)
        if is_main_process():
            _remove(final + '.tmp')
        barrier()
        super().save_checkpoint(out_dir, filename + '.tmp', *args, **kwargs)
        barrier()
        if is_main_process():
            _publish(final + '.tmp', final)
        barrier()
