"""Measurement helpers for benchmarks: interleaved timing, matmul peak, FLOPs, training-step memory.

Timings on shared CPUs drift by several percent within seconds, so comparisons interleave the
candidates (A, B, A, B, ...) and report medians; nothing here asserts a speed.
"""
import statistics
import time
from typing import Callable, Iterable

import torch
from torch.utils.flop_counter import FlopCounterMode


def interleaved_times(candidates: dict[str, Callable[[], object]], repeats: int, warmup: int = 1,
                      device: str = 'cpu', inference: bool = True) -> dict[str, list[float]]:
    """Seconds per call of each candidate, run in turn ``repeats`` times after ``warmup`` calls each
    (on a GPU, each call is timed to the end of its kernels); ``inference=False`` keeps autograd on."""
    sync = torch.cuda.synchronize if device.startswith('cuda') else (lambda: None)
    times: dict[str, list[float]] = {name: [] for name in candidates}
    with torch.inference_mode(inference):
        for fn in candidates.values():
            for _ in range(warmup):
                fn()
        for _ in range(repeats):
            for name, fn in candidates.items():
                sync()
                start = time.perf_counter()
                fn()
                sync()
                times[name].append(time.perf_counter() - start)
    return times


def median(values: Iterable[float]) -> float:
    return statistics.median(values)


def print_rates(times: dict[str, list[float]], items_per_call: float, unit: str, baseline: str, candidate: str,
                ratio_label: str = 'speed-up') -> None:
    """One line per candidate (items per second, from the median time) and the candidate/baseline ratio."""
    width = max(len(name) for name in times)
    for name, seconds in times.items():
        print(f'  {name:{width}}: {items_per_call / median(seconds):7.2f} {unit}')
    print(f'  {ratio_label}: {median(times[baseline]) / median(times[candidate]):.3f}x')


def matmul_peak_gflops(sizes: Iterable[int] = (1024, 2048, 3072, 4096),
                       repeats: int = 5) -> tuple[float, dict[str, dict[int, float]]]:
    """Best fp32 rate of the square products ``n x n @ n x n`` in GFLOP/s, each the median of
    ``repeats`` runs, through both matmul back-ends the model may use (aten's BLAS and oneDNN), so
    that the peak is the best this machine reaches, not the slower library's."""
    from internvl.models.linear import find_onednn_linear
    onednn = find_onednn_linear()
    rates: dict[str, dict[int, float]] = {'aten mm': {}}
    if onednn is not None:
        rates['oneDNN'] = {}
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        candidates = {'aten mm': lambda: a @ b}
        if onednn is not None:
            candidates['oneDNN'] = lambda: onednn(a, b, None, 'none', [], '')
        for name, seconds in interleaved_times(candidates, repeats).items():
            rates[name][n] = 2 * n ** 3 / median(seconds) / 1e9
    return max(max(r.values()) for r in rates.values()), rates


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call (2 per multiply-add), counting scaled_dot_product_attention too.

    Runs with autograd enabled: InternViT's layers then take their aten path (``F.linear``), which
    the counter knows, instead of the oneDNN inference kernels, which it does not.
    """
    with torch.enable_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def training_step_memory(model: torch.nn.Module, run_step: Callable[[], None],
                         *inputs: torch.Tensor) -> dict[str, int]:
    """Bytes of one training step (``run_step``: forward + backward) beyond what was held before it.

    Returns ``peak_minus_before`` (the step's peak of all tracked memory, gradients included, less the
    parameters and inputs held before) and ``activations`` (the activation part at that peak), from
    torch's MemTracker, which follows every tensor storage on the CPU as on a GPU.
    """
    from torch.distributed._tools.mem_tracker import MemTracker, _MemRefType
    model.zero_grad(set_to_none=True)
    tracker = MemTracker()
    tracker.track_external(model, *inputs)
    with tracker:
        before = tracker.get_tracker_snapshot('current')
        run_step()
    peak = tracker.get_tracker_snapshot('peak')
    model.zero_grad(set_to_none=True)
    device = next(model.parameters()).device
    return {'peak_minus_before': peak[device]['Total'] - before.get(device, {}).get('Total', 0),
            'activations': peak[device][_MemRefType.ACT]}
