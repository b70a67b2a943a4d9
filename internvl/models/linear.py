"""The linear layers of InternViT, with a switch for the CPU inference back-end.

On the CPU, oneDNN's matmul with the GELU fused in (``torch.ops.mkldnn._linear_pointwise``) is about
20% faster than aten's BLAS path on some CPUs and as much slower on others, and it has no backward. So
the back-end is an explicit, process-wide choice made before any forward runs, never inside one:
``set_cpu_linear_backend('aten' | 'onednn' | 'auto')``. 'aten' (``F.linear``) is the default of the
library; the tools choose 'auto' at start-up (oneDNN where its op is intact and measured faster on this
CPU; ``INTERNVL_CPU_LINEAR`` overrides it), and the choice is logged. Training, autocast, other dtypes
and tracing (FLOP counters know aten's ops) always take ``F.linear``.
"""
import logging
import os
import time
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

CPU_LINEAR_BACKENDS = ('aten', 'onednn', 'auto')
_ONEDNN_OP: Optional[Callable] = None  # the switch: oneDNN's op when chosen, else None (aten)


def recorded(*tensors: torch.Tensor) -> bool:
    """Whether autograd records an op on ``tensors`` (then in-place updates are not allowed)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def find_onednn_linear() -> Optional[Callable]:
    """oneDNN's fused linear (+ GELU) op, or None. It is private to torch: its signature is checked here,
    on a small input against ``F.linear`` + GELU, and any change (missing op, other arguments, other
    result) makes it unavailable (``set_cpu_linear_backend`` then keeps aten)."""
    try:
        if not torch.backends.mkldnn.is_available():
            return None
        op = torch.ops.mkldnn._linear_pointwise.default
        x, w, b = torch.randn(3, 8), torch.randn(16, 8), torch.randn(16)
        with torch.no_grad():
            plain = op(x, w, b, 'none', [], '')
            fused = op(x, w, b, 'gelu', [], 'none')
        reference = F.linear(x, w, b)
        if not (torch.allclose(plain, reference, atol=1e-5) and torch.allclose(fused, F.gelu(reference), atol=1e-5)):
            return None
        return op
    except (AttributeError, RuntimeError, TypeError):
        return None


def _faster_than_aten(op: Callable, tokens: int = 2048, width: int = 1024, repeats: int = 3) -> bool:
    """Whether ``op`` multiplies a ViT-sized product faster than aten's BLAS on this CPU (medians of
    ``repeats``): oneDNN wins by about 20% on some CPUs and loses by as much on others."""
    x, w = torch.randn(tokens, width), torch.randn(width, width)
    timings = {}
    with torch.no_grad():
        for name, fn in (('aten', lambda: F.linear(x, w)), ('onednn', lambda: op(x, w, None, 'none', [], ''))):
            fn()
            runs = []
            for _ in range(repeats):
                start = time.perf_counter()
                fn()
                runs.append(time.perf_counter() - start)
            timings[name] = sorted(runs)[repeats // 2]
    return timings['onednn'] < timings['aten']


def set_cpu_linear_backend(backend: Optional[str] = None) -> str:
    """Choose the CPU inference back-end of ``linear`` for this process -> 'aten' or 'onednn', logged.
    ``backend`` None reads ``INTERNVL_CPU_LINEAR`` (default 'auto'). 'onednn' where this torch's op is
    missing or changed is an error; 'auto' measures both on a ViT-sized product and keeps the faster."""
    global _ONEDNN_OP
    backend = backend or os.environ.get('INTERNVL_CPU_LINEAR', 'auto')
    if backend not in CPU_LINEAR_BACKENDS:
        raise ValueError(f'CPU linear back-end {backend!r} (INTERNVL_CPU_LINEAR): expected one of '
                         f'{list(CPU_LINEAR_BACKENDS)}')
    op = None if backend == 'aten' else find_onednn_linear()
    if backend == 'onednn' and op is None:
        raise RuntimeError("CPU linear back-end 'onednn': this torch has no usable "
                           "torch.ops.mkldnn._linear_pointwise (choose 'aten' or 'auto')")
    if backend == 'auto' and op is not None and not _faster_than_aten(op):
        op = None
    _ONEDNN_OP = op
    chosen = 'onednn' if op is not None else 'aten'
    logger.info('InternViT CPU inference linear layers: %s (%s)',
                "oneDNN, GELU fused" if op is not None else "aten's BLAS", f'backend {backend!r}')
    return chosen


def cpu_linear_backend() -> str:
    """The back-end ``linear`` uses for CPU inference now: 'aten' or 'onednn'."""
    return 'onednn' if _ONEDNN_OP is not None else 'aten'


def linear(x: torch.Tensor, layer: nn.Linear, gelu: bool = False) -> torch.Tensor:
    """``layer(x)``, then exact GELU if ``gelu``. With the oneDNN backend chosen, fp32 on the CPU without
    autograd and outside autocast goes through oneDNN's matmul (GELU fused into it); that op has no backward,
    and autocast must pick the dtype itself, so training and autocast use ``F.linear`` (as does
    tracing: FLOP counters know aten's ops, and the tracer fails on oneDNN's)."""
    op = None
    if (x.device.type == 'cpu' and x.dtype == torch.float32 and layer.weight.dtype == torch.float32
            and not recorded(x, layer.weight) and not torch.is_autocast_enabled('cpu')
            and not torch.jit.is_tracing()):
        op = _ONEDNN_OP
    if op is not None:
        return op(x, layer.weight, layer.bias, 'gelu' if gelu else 'none', [], 'none' if gelu else '')
    out = F.linear(x, layer.weight, layer.bias)
    return F.gelu(out) if gelu else out
