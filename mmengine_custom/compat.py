"""Workarounds for mmengine 0.10.7 on torch 2.14 / DeepSpeed 0.19.8, all in one place.

Each workaround fixes one breakage listed in ``../shared/ENVIRONMENT.md`` and has a test in
``tests/test_compat.py`` that fails without it. ``apply()`` installs them all; it is idempotent and
runs when ``mmengine_custom`` (and so ``mmseg_custom`` / ``mmdet_custom``) is imported, which is
before any runner is built (configs import our layers through ``custom_imports``).

1. ``torch.load`` defaults to ``weights_only=True`` since torch 2.6, and mmengine's local checkpoint
   loader does not pass it, so mmengine cannot read its own checkpoints (their meta pickles message-hub
   objects). The local loader is re-registered with ``weights_only=False`` (mmengine issue 1655).
2. deepspeed >= 0.19.7 has no ``deepspeed.runtime.fp16.onebit``, which mmengine imports when a
   ``DeepSpeedStrategy`` is built. The registration now registers the DeepSpeed optimizers that exist.
3. ``init_dist`` calls ``torch.cuda.set_device`` even without a GPU. Without CUDA the process group
   is now started with gloo and no device is set.
4. The Runner wraps DDP with ``device_ids=[LOCAL_RANK]``, which torch rejects for CPU modules.
   ``MMDistributedDataParallel`` now drops ``device_ids`` for a module whose parameters are on the CPU.
5. ``AmpOptimWrapper`` asserts that a GPU is present. On the CPU it now accepts ``dtype='bfloat16'``
   (CPU autocast; no loss scaling is needed for bf16) and refuses fp16 with a clear message.
6. ``FSDPStrategy.load_optim_state_dict`` passes ``optim_state_dict_to_load`` its arguments in the
   pre-2.x order (state dict first); current torch takes (model, optimizer, optim_state_dict).

mmseg 1.2.2's own ``tools/analysis_tools/get_flops.py`` passes both ``input_shape`` and ``inputs``
(ENVIRONMENT.md item 7): that is a bug in a script, not in a library we call, so it has no patch
here; our FLOPs tool calls ``mmengine.analysis`` correctly.
"""
import functools
import logging
import os
from typing import Any, Callable

import torch

logger = logging.getLogger(__name__)

_APPLIED: set[str] = set()


def _once(func: Callable[[], None]) -> Callable[[], None]:
    @functools.wraps(func)
    def wrapper() -> None:
        if func.__name__ not in _APPLIED:
            func()
            _APPLIED.add(func.__name__)
    return wrapper


def _has_gpu() -> bool:
    from mmengine.device import is_cuda_available, is_mlu_available, is_musa_available, is_npu_available
    return is_cuda_available() or is_npu_available() or is_mlu_available() or is_musa_available()


@_once
def load_full_checkpoints() -> None:
    from mmengine.runner.checkpoint import CheckpointLoader

    def load_from_local(filename: str, map_location: Any) -> Any:
        filename = os.path.expanduser(filename)
        if not os.path.isfile(filename):
            raise FileNotFoundError(f'{filename} can not be found.')
        # mmengine's own checkpoints pickle their meta: they are only loaded from the user's runs.
        return torch.load(filename, map_location=map_location, weights_only=False)

    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)


@_once
def register_available_deepspeed_optimizers() -> None:
    from mmengine._strategy import deepspeed as ds_strategy

    def register() -> list[str]:
        from mmengine.registry import OPTIMIZERS
        try:
            from deepspeed.ops.adam import DeepSpeedCPUAdam, FusedAdam
            from deepspeed.ops.lamb import FusedLamb
        except ImportError:
            return []
        optimizers = [DeepSpeedCPUAdam, FusedAdam, FusedLamb]
        try:  # removed in deepspeed 0.19.7
            from deepspeed.runtime.fp16.onebit import OnebitAdam, OnebitLamb, ZeroOneAdam
            optimizers += [OnebitAdam, OnebitLamb, ZeroOneAdam]
        except ImportError:
            pass
        for optimizer in optimizers:
            OPTIMIZERS.register_module(module=optimizer, force=True)
        return [o.__name__ for o in optimizers]

    ds_strategy.register_deepspeed_optimizers = register


@_once
def init_dist_without_cuda() -> None:
    from mmengine.dist import utils as dist_utils
    original = dist_utils._init_dist_pytorch

    def init_dist_pytorch(backend: str, init_backend: str = 'torch', **kwargs: Any) -> None:
        if _has_gpu():
            return original(backend, init_backend=init_backend, **kwargs)
        backend = 'gloo' if backend in ('nccl', 'hccl', 'cncl', 'mccl') else backend
        if init_backend == 'deepspeed':
            import deepspeed
            deepspeed.init_distributed(dist_backend=backend, **kwargs)
        else:
            torch.distributed.init_process_group(backend=backend, **kwargs)

    dist_utils._init_dist_pytorch = init_dist_pytorch


@_once
def cpu_ddp_without_device_ids() -> None:
    from mmengine.model.wrappers import MMDistributedDataParallel
    original = MMDistributedDataParallel.__init__

    @functools.wraps(original)
    def __init__(self, module: torch.nn.Module, detect_anomalous_params: bool = False, **kwargs: Any) -> None:
        param = next(module.parameters(), None)
        if param is not None and param.device.type == 'cpu':
            kwargs.pop('device_ids', None)
            kwargs.pop('output_device', None)
        original(self, module=module, detect_anomalous_params=detect_anomalous_params, **kwargs)

    MMDistributedDataParallel.__init__ = __init__


@_once
def bf16_amp_on_cpu() -> None:
    from mmengine.optim.optimizer import amp_optimizer_wrapper as amp_module
    from mmengine.optim.optimizer.amp_optimizer_wrapper import AmpOptimWrapper
    original = AmpOptimWrapper.__init__

    @functools.wraps(original)
    def __init__(self, loss_scale: Any = 'dynamic', dtype: Any = None, use_fsdp: bool = False,
                 **kwargs: Any) -> None:
        if _has_gpu():
            return original(self, loss_scale=loss_scale, dtype=dtype, use_fsdp=use_fsdp, **kwargs)
        if dtype not in ('bfloat16', torch.bfloat16):
            raise ValueError(f'AmpOptimWrapper on the CPU needs dtype="bfloat16" (got dtype={dtype!r}); '
                             'fp16 mixed precision needs a GPU')
        check = amp_module.is_cuda_available
        amp_module.is_cuda_available = lambda: True  # only for the constructor's device assertion
        try:
            original(self, loss_scale=loss_scale, dtype=dtype, use_fsdp=use_fsdp, **kwargs)
        finally:
            amp_module.is_cuda_available = check
        # bf16 has fp32's range: loss scaling is neither needed nor available on the CPU.
        self.loss_scaler = torch.amp.GradScaler('cpu', enabled=False)

    AmpOptimWrapper.__init__ = __init__


@_once
def fsdp_optim_state_argument_order() -> None:
    try:
        from mmengine._strategy.fsdp import FSDP, FSDPStrategy
    except ImportError:
        return

    def load_optim_state_dict(self: Any, state_dict: dict) -> None:
        optim_state_dict = FSDP.optim_state_dict_to_load(self.model, self.optim_wrapper.optimizer, state_dict)
        self.optim_wrapper.load_state_dict(optim_state_dict)

    FSDPStrategy.load_optim_state_dict = load_optim_state_dict


WORKAROUNDS = (load_full_checkpoints, register_available_deepspeed_optimizers, init_dist_without_cuda,
               cpu_ddp_without_device_ids, bf16_amp_on_cpu, fsdp_optim_state_argument_order)


def apply() -> None:
    """Install every workaround (idempotent)."""
    for workaround in WORKAROUNDS:
        workaround()
