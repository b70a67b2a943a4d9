"""mmengine's training strategies as this stack needs them, named by the ``_base_/strategies``.

- ``SafeDeepSpeedStrategy``: DeepSpeed's engine reads its checkpoints (``--resume``) through the core's
  ``load_torch_file`` instead of ``torch.load(weights_only=False)``, so a checkpoint directory from a
  stranger cannot run code; and the runner's checkpoint hooks run on save and resume (mmengine's
  strategy never calls them, so ``ResumeRNGHook`` would save and restore nothing).
- ``ResumableFSDPStrategy``: mmengine 0.10.7 passes ``FSDP.optim_state_dict_to_load`` its arguments in
  the pre-2.0 order (state dict first), so an FSDP resume fails on current torch (TypeError
  "unhashable type: 'dict'"); this one passes (model, optimizer, state dict).

``SafeDeepSpeedStrategy`` is the type of ``configs/_base_/strategies/deepspeed_zero1.py`` (every DeepSpeed
recipe); ``ResumableFSDPStrategy`` is for an FSDP config (none ships). ``tests/openmmlab/test_compat.py``
runs mmengine's FSDP resume with ours and with mmengine's own class; ``test_safe_loading.py`` and
``test_crash_safety.py`` resume DeepSpeed runs through ours.
"""
from typing import Any, Callable, Optional

from deepspeed.runtime.checkpoint_engine.torch_checkpoint_engine import TorchCheckpointEngine
from mmengine._strategy import DeepSpeedStrategy, FSDPStrategy
from mmengine.registry import STRATEGIES
from torch import nn

from internvl.checkpoint import load_torch_file


class SafeTorchCheckpointEngine(TorchCheckpointEngine):
    """DeepSpeed's torch checkpoint engine, reading through ``load_torch_file``."""

    def load(self, path: str, map_location: Any = None) -> Any:
        return load_torch_file(path, map_location=map_location)


@STRATEGIES.register_module()
class SafeDeepSpeedStrategy(DeepSpeedStrategy):
    """mmengine's ``DeepSpeedStrategy`` with safe checkpoint reads and the checkpoint hooks called."""

    def _wrap_model(self, model: nn.Module) -> nn.Module:
        wrapper = super()._wrap_model(model)
        engine = wrapper.model
        if type(engine.checkpoint_engine) is not TorchCheckpointEngine:
            raise ValueError(f'SafeDeepSpeedStrategy: DeepSpeed chose the checkpoint engine '
                             f'{type(engine.checkpoint_engine).__name__}, which unpickles checkpoints with '
                             f'weights_only=False; only its TorchCheckpointEngine is supported (remove the '
                             f'nebula / decoupled checkpoint settings from the strategy)')
        engine.checkpoint_engine = SafeTorchCheckpointEngine(engine._config)
        return wrapper

    def save_checkpoint(self, filename: str, *, save_optimizer: bool = True, save_param_scheduler: bool = True,
                        extra_ckpt: Optional[dict] = None, callback: Optional[Callable] = None) -> None:
        extra_ckpt = {} if extra_ckpt is None else extra_ckpt
        if callback is not None:  # the runner's before_save_checkpoint hooks
            callback(extra_ckpt)
        super().save_checkpoint(filename, save_optimizer=save_optimizer, save_param_scheduler=save_param_scheduler,
                                extra_ckpt=extra_ckpt)

    def resume(self, filename: str, *, resume_optimizer: bool = True, resume_param_scheduler: bool = True,
               map_location: Any = 'default', callback: Optional[Callable] = None) -> dict:
        extra_ckpt = super().resume(filename, resume_optimizer=resume_optimizer,
                                    resume_param_scheduler=resume_param_scheduler, map_location=map_location)
        if callback is not None:  # the runner's after_load_checkpoint hooks
            callback(extra_ckpt)
        return extra_ckpt


@STRATEGIES.register_module()
class ResumableFSDPStrategy(FSDPStrategy):
    """mmengine's ``FSDPStrategy`` whose optimizer state reloads on current torch."""

    def load_optim_state_dict(self, state_dict: dict) -> None:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        optim_state_dict = FSDP.optim_state_dict_to_load(self.model, self.optim_wrapper.optimizer, state_dict)
        self.optim_wrapper.load_state_dict(optim_state_dict)
