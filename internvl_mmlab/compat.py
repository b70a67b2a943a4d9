"""The workarounds for this stack that mmengine offers no extension point for, in one place, applied by
one version-gated function (``apply``, called once when ``internvl_mmlab`` is imported, so that mmseg's
and mmdet's own APIs work with our configs and checkpoints too).

Everything else this stack needs is a registered subclass named in the ``_base_`` configs
(``internvl_mmlab.engine``: the runners' atomic checkpoints, ``SafeDeepSpeedStrategy``,
``ResumableFSDPStrategy``, ``PortableAmpOptimWrapper``, ``CPUCompatibleDistributedDataParallel``) or a
registration through mmengine's own API (the safe checkpoint loader,
``internvl_mmlab.engine.checkpoint.register_safe_loading``).
``tests/openmmlab/test_compat.py`` shows, for each workaround here and each subclass, the mmengine
path failing without it and working with it; ``tests/test_architecture.py`` fails if anything outside
this module rebinds a library's attribute.

1. **DeepSpeed's optimizers** (mmengine 0.10.7 with deepspeed >= 0.19.7). mmengine's
   ``register_deepspeed_optimizers``, called inside ``DeepSpeedStrategy.__init__``, imports
   ``deepspeed.runtime.fp16.onebit``, which deepspeed 0.19.7 removed; it now registers the
   optimizers that exist. Upstream: no mmengine release or issue covers it yet (mmengine 0.10.7 is the
   last release); pinning deepspeed <= 0.19.6 is the alternative.
2. **Process groups on the CPU** (mmengine 0.10.7). ``init_dist`` calls ``torch.cuda.set_device``
   even without a GPU; it is called by the Runner and by every strategy, so one patch covers them. A
   CPU backend (``env_cfg.dist_cfg.backend='gloo'``, the tools' ``--cpu``) now starts without a
   device, and says so in the log; a GPU backend (nccl, ...) with no GPU visible is an error naming the
   setting: a GPU node with a broken CUDA must not start a 6B job on the CPU. Upstream: mmengine
   0.10.7's ``mmengine/dist/utils.py``; no issue or release covers CPU process groups.
3. **DeepSpeed's ``zero_to_fp32``** (the release of a DeepSpeed checkpoint) unpickles with
   ``weights_only=False``; ``safe_zero_to_fp32`` hands it ``load_torch_file`` for the duration of one
   release (a context manager: not applied on import). Upstream: deepspeed 0.19.8's
   ``deepspeed/utils/zero_to_fp32.py``, which takes no loader.

mmseg 1.2.2's own ``tools/analysis_tools/get_flops.py`` passes both ``input_shape`` and ``inputs``: a
bug in a script, not in a library we call, so it has no workaround here; ``tools/analysis/get_flops.py``
counts with fvcore.
"""
import contextlib
import functools
import logging
import os
from typing import Any, Callable, Iterator

import torch

logger = logging.getLogger(__name__)

_APPLIED: set[str] = set()
_SKIPPED: set[str] = set()


def _once(func: Callable[[], None]) -> Callable[[], None]:
    @functools.wraps(func)
    def wrapper() -> None:
        if func.__name__ not in _APPLIED:
            func()
            _APPLIED.add(func.__name__)
    return wrapper


def has_accelerator() -> bool:
    """A device mmengine's AMP and GPU process groups run on (CUDA, NPU, MLU, MUSA)."""
    from mmengine.device import is_cuda_available, is_mlu_available, is_musa_available, is_npu_available
    return is_cuda_available() or is_npu_available() or is_mlu_available() or is_musa_available()


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
        if backend in GPU_BACKENDS and not has_accelerator():
            raise RuntimeError(
                f"env_cfg.dist_cfg.backend='{backend}' needs a GPU, but none is visible "
                f"(torch.cuda.is_available() is False, CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}). "
                "On a GPU node, check the driver and CUDA_VISIBLE_DEVICES; to run on the CPU on purpose, pass "
                "--cpu to tools/train.py / tools/test.py / tools/dist_train.sh (or --cfg-options "
                "env_cfg.dist_cfg.backend=gloo)")
        if has_accelerator():
            return original(backend, init_backend=init_backend, **kwargs)
        logger.info('starting the process group with the %s backend on the CPU (env_cfg.dist_cfg.backend)', backend)
        if init_backend == 'deepspeed':
            import deepspeed
            deepspeed.init_distributed(dist_backend=backend, **kwargs)
        else:
            torch.distributed.init_process_group(backend=backend, **kwargs)

    dist_utils._init_dist_pytorch = init_dist_pytorch


class _TorchWithSafeLoad:
    """The ``torch`` module as ``zero_to_fp32`` sees it, with ``load`` reading through ``load_torch_file``."""

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    @staticmethod
    def load(f: Any, map_location: Any = None, mmap: bool = False, **_: Any) -> Any:
        from internvl.checkpoint import load_torch_file
        return load_torch_file(f, map_location=map_location, mmap=mmap)


@contextlib.contextmanager
def safe_zero_to_fp32() -> Iterator[Any]:
    """DeepSpeed's ``zero_to_fp32`` module, reading through ``load_torch_file`` while the context lasts
    (deepspeed 0.19.8: its ``torch.load`` calls pass ``weights_only=False``, and it takes no loader).
    Scoped, not installed: nothing else sees the change."""
    from deepspeed.utils import zero_to_fp32
    original = zero_to_fp32.torch
    zero_to_fp32.torch = _TorchWithSafeLoad()
    try:
        yield zero_to_fp32
    finally:
        zero_to_fp32.torch = original


# workaround -> (package, the versions it is for: an exact one, or '>=X' for every one from X on)
WORKAROUNDS: dict[Callable[[], None], tuple[tuple[str, str], ...]] = {
    register_available_deepspeed_optimizers: (('mmengine', '0.10.7'), ('deepspeed', '>=0.19.7')),
    cpu_process_groups: (('mmengine', '0.10.7'),),
}


def _version_matches(package: str, spec: str) -> bool:
    from importlib.metadata import version

    from mmengine.utils import digit_version
    installed = digit_version(version(package).split('+')[0])
    if spec.startswith('>='):
        return installed >= digit_version(spec[2:])
    return installed == digit_version(spec)


def apply() -> None:
    """Install every workaround whose versions are installed (idempotent); one meant for other versions
    is not installed, and the log says so (its test then shows whether it is still needed)."""
    for workaround, versions in WORKAROUNDS.items():
        if all(_version_matches(package, spec) for package, spec in versions):
            workaround()
        elif workaround.__name__ not in _SKIPPED:
            _SKIPPED.add(workaround.__name__)
            logger.warning('internvl_mmlab.compat: %s is for %s; not applied to the installed versions',
                           workaround.__name__, ', '.join(f'{p} {s}' for p, s in versions))
