"""Workarounds for mmengine 0.10.7 on torch 2.14 / DeepSpeed 0.19.8, all in one place.

Each workaround fixes one breakage listed in ``../shared/ENVIRONMENT.md`` and has a test in
``tests/test_compat.py`` that fails without it. ``apply()`` installs them all; it is idempotent and
runs when ``mmengine_custom`` (and so ``mmseg_custom`` / ``mmdet_custom``) is imported, which is
before any runner is built (configs import our layers through ``custom_imports``).

1. ``torch.load`` defaults to ``weights_only=True`` since torch 2.6, and mmengine's local checkpoint
   loader does not pass it, so mmengine cannot read its own checkpoints (their meta pickles message-hub
   objects; mmengine issue 1655). Nothing is unpickled with ``weights_only=False`` instead: exactly the
   classes mmengine's and DeepSpeed's checkpoints pickle are added to the core's allowlist
   (``internvl.checkpoint.allow_pickled_classes``), and mmengine's local loader and DeepSpeed's
   checkpoint engine (``--resume``) read through ``internvl.checkpoint.load_torch_file``, which refuses
   anything else by name. The loader also reads ``.safetensors`` files (as ``{'state_dict': ...}``).
2. deepspeed >= 0.19.7 has no ``deepspeed.runtime.fp16.onebit``, which mmengine imports when a
   ``DeepSpeedStrategy`` is built. The registration now registers the DeepSpeed optimizers that exist.
3. ``init_dist`` calls ``torch.cuda.set_device`` even without a GPU. A process group whose backend
   is a CPU one (``env_cfg.dist_cfg.backend='gloo'``, or ``--cpu`` of the tools) now starts without a
   device, and says so in the log. A GPU backend (nccl, ...) with no GPU visible is an error naming
   the setting: a GPU node with a broken CUDA must not start a 6B job on the CPU.
4. The Runner wraps DDP with ``device_ids=[LOCAL_RANK]``, which torch rejects for CPU modules.
   ``MMDistributedDataParallel`` now drops ``device_ids`` for a module whose parameters are on the CPU.
5. ``AmpOptimWrapper`` asserts that a GPU is present. On the CPU it now accepts ``dtype='bfloat16'``
   (CPU autocast; no loss scaling is needed for bf16) and refuses fp16 with a clear message.
6. ``FSDPStrategy.load_optim_state_dict`` passes ``optim_state_dict_to_load`` its arguments in the
   pre-2.x order (state dict first); current torch takes (model, optimizer, optim_state_dict).

mmseg 1.2.2's own ``tools/analysis_tools/get_flops.py`` passes both ``input_shape`` and ``inputs``
(ENVIRONMENT.md item 7): that is a bug in a script, not in a library we call, so it has no patch
here; our FLOPs tool (``tools/analysis/get_flops.py``) counts with fvcore.
"""
import functools
import json
import logging
import os
import pickle
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


def _message_hub_getattr(obj: Any, name: str) -> Any:
    """``getattr`` as mmengine's message hub pickles it (``HistoryBuffer.statistics_methods`` holds the
    class's own methods, pickled as ``getattr(HistoryBuffer, 'mean')``): those statistics methods of
    ``HistoryBuffer`` only. A plain ``getattr`` in the allowlist would let a pickle reach anything."""
    from mmengine.logging import HistoryBuffer
    # the four built in (registered on first use) and any registered with HistoryBuffer.register_statistics
    if obj is not HistoryBuffer or name not in {'min', 'max', 'current', 'mean', *HistoryBuffer._statistics_methods}:
        raise pickle.UnpicklingError(f'getattr({obj!r}, {name!r}) is not allowed in a checkpoint')
    return getattr(obj, name)


def checkpoint_classes() -> list:
    """What mmengine's checkpoints (message hub, configs) and DeepSpeed's (loss scaler, ZeRO stage,
    fragment addresses) pickle besides tensors and numpy data (allowed by the core): inert classes."""
    from mmengine.config import ConfigDict
    from mmengine.logging import HistoryBuffer
    classes = [HistoryBuffer, ConfigDict, (_message_hub_getattr, 'builtins.getattr')]
    try:
        from deepspeed.runtime.fp16.loss_scaler import LossScaler
        from deepspeed.runtime.zero.config import ZeroStageEnum
        from deepspeed.utils.tensor_fragment import fragment_address
        classes += [LossScaler, ZeroStageEnum, fragment_address]
    except ImportError:
        pass
    return classes


def load_local_checkpoint(filename: str, map_location: Any = None, mmap: bool = False) -> Any:
    """mmengine's loader for local files, without unpickling code: pickles through ``load_torch_file``
    (memory-mapped with ``mmap``), safetensors files as ``{'state_dict': tensors, 'meta': ...}`` (a
    DeepSpeed release keeps the run's meta as JSON in the metadata), a DeepSpeed checkpoint directory
    released in memory to the same (fp32, through DeepSpeed's ``zero_to_fp32``; nothing is written)."""
    from mmengine.logging import print_log

    from internvl.checkpoint import load_torch_file, read_weights

    from .deepspeed import is_deepspeed_checkpoint, release_state_dict
    filename = os.path.expanduser(filename)
    if is_deepspeed_checkpoint(filename):
        state_dict, meta = release_state_dict(filename)
        print_log(f'{filename}: a DeepSpeed checkpoint directory, released in memory ({len(state_dict)} tensors, '
                  f'fp32)', logger='current')
        return {'state_dict': state_dict, 'meta': meta}
    if not os.path.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    if filename.endswith('.safetensors'):
        state_dict, metadata, _ = read_weights(filename)
        return {'state_dict': state_dict, 'meta': json.loads(metadata['meta']) if 'meta' in metadata else metadata}
    return load_torch_file(filename, map_location=map_location, mmap=mmap)


@_once
def safe_checkpoint_loading() -> None:
    from mmengine.runner.checkpoint import CheckpointLoader

    from internvl.checkpoint import allow_pickled_classes, load_torch_file
    allow_pickled_classes(checkpoint_classes())
    CheckpointLoader.register_scheme(prefixes='', loader=load_local_checkpoint, force=True)
    try:
        from deepspeed.runtime.checkpoint_engine.torch_checkpoint_engine import TorchCheckpointEngine
    except ImportError:
        return

    def load(self: Any, path: str, map_location: Any = None) -> Any:
        return load_torch_file(path, map_location=map_location)

    TorchCheckpointEngine.load = load


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


GPU_BACKENDS = ('nccl', 'hccl', 'cncl', 'mccl')


@_once
def cpu_process_groups() -> None:
    from mmengine.dist import utils as dist_utils
    original = dist_utils._init_dist_pytorch

    def init_dist_pytorch(backend: str, init_backend: str = 'torch', **kwargs: Any) -> None:
        if backend in GPU_BACKENDS and not _has_gpu():
            raise RuntimeError(
                f"env_cfg.dist_cfg.backend='{backend}' needs a GPU, but none is visible "
                f"(torch.cuda.is_available() is False, CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}). "
                "On a GPU node, check the driver and CUDA_VISIBLE_DEVICES; to run on the CPU on purpose, pass "
                "--cpu to tools/train.py / tools/test.py / tools/dist_train.sh (or --cfg-options "
                "env_cfg.dist_cfg.backend=gloo)")
        if _has_gpu():
            return original(backend, init_backend=init_backend, **kwargs)
        logger.info('starting the process group with the %s backend on the CPU (env_cfg.dist_cfg.backend)', backend)
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


WORKAROUNDS = (safe_checkpoint_loading, register_available_deepspeed_optimizers, cpu_process_groups,
               cpu_ddp_without_device_ids, bf16_amp_on_cpu, fsdp_optim_state_argument_order)


def apply() -> None:
    """Install every workaround (idempotent)."""
    for workaround in WORKAROUNDS:
        workaround()
