"""FLOPs with fvcore, counted honestly, and the analytic count of InternViT to check them against.

Convention (fvcore's): one fused multiply-add is one FLOP; element-wise ops are not counted, a LayerNorm
counts 5 per element (RMSNorm nothing).
fvcore has no handle for ``aten::scaled_dot_product_attention`` and would count attention as zero:
``sdpa_flops`` adds q @ k^T and attn @ v (L * S * (E + Ev) per batch and head). Windowed attention runs
SDPA on windows as the batch, so it is counted as windowed. ``torch.utils.flop_counter.FlopCounterMode``
counts SDPA itself and reports 2 FLOPs per multiply-add.

A stack of identical blocks costs the same per block, so ``block_per_kind_analysis`` traces one
InternViT block of each kind (global / windowed attention) and gives every other block of that kind
the same count, as if traced: exact, and the 6B's trace takes one block's time per kind instead of 48.

Models are counted without their weights in memory: built on the meta device, then given storage by
``to_empty`` that nothing ever writes (the allocator's untouched pages), with autograd off, so a 6B
model costs the memory of its activations. fvcore traces the model (``torch.jit.trace``), which does
not run on the meta device itself.
"""
import math
from collections import Counter
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Optional, Sequence

import torch
from fvcore.nn import FlopCountAnalysis
from fvcore.nn.jit_handles import get_shape
from torch import nn

SDPA_OP = 'aten::scaled_dot_product_attention'


def sdpa_flops(inputs: list, outputs: list) -> int:
    """fvcore handle: q [..., L, E], k [..., S, E], v [..., S, Ev] -> (L * S * E + L * S * Ev) per batch/head."""
    q, k, v = (get_shape(value) for value in inputs[:3])
    batch_heads_queries = math.prod(q[:-1])
    return batch_heads_queries * k[-2] * q[-1] + batch_heads_queries * k[-2] * v[-1]


def flop_analysis(model: nn.Module, inputs: Any) -> FlopCountAnalysis:
    """fvcore's analysis of ``model(*inputs)`` with the SDPA handle, quiet about ops that cost nothing."""
    analysis = FlopCountAnalysis(model, inputs).set_op_handle(SDPA_OP, sdpa_flops)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    return analysis


@contextmanager
def _blocks_pass_through(model: nn.Module) -> Iterator[dict[str, str]]:
    """Within: every InternViT block after the first of its kind returns its input (it is then traced
    as free); yields {such a block's name: the name of the first block of its kind}."""
    from ..models.intern_vit import InternViT
    repeats, skipped = {}, []
    for name, module in model.named_modules():
        if isinstance(module, InternViT):
            first: dict[int, str] = {}
            for i, block in enumerate(module.blocks):
                full = f'{name}.blocks.{i}' if name else f'blocks.{i}'
                if block.window_size in first:
                    repeats[full] = first[block.window_size]
                    skipped.append(block)
                else:
                    first[block.window_size] = full
    for block in skipped:
        block.forward = lambda x, grid=None: x
    try:
        yield repeats
    finally:
        for block in skipped:
            del block.forward


class _ScaledAnalysis:
    """A ``FlopCountAnalysis`` traced with the repeated blocks passed through, read as if they had
    run: each repeat gets its first block's counts (and those of its submodules), its ancestors the
    sum. Offers what fvcore's ``flop_count_table`` reads of an analysis."""

    def __init__(self, analysis: FlopCountAnalysis, repeats: dict[str, str]) -> None:
        self._model = analysis._model
        self.analysis = analysis
        counts = Counter(analysis.by_module())
        for repeat, first in repeats.items():
            for key in [k for k in counts if k == first or k.startswith(first + '.')]:
                counts[repeat + key[len(first):]] = counts[key]
            parts = repeat.split('.')
            for depth in range(len(parts)):
                counts['.'.join(parts[:depth])] += counts[first]
        self.counts = counts
        self.repeats = repeats

    def by_module(self) -> Counter:
        return self.counts

    def total(self) -> int:
        return self.counts['']

    def uncalled_modules(self) -> set[str]:
        return {m for m in self.analysis.uncalled_modules()
                if not any(m == r or m.startswith(r + '.') for r in self.repeats)}

    def unsupported_ops_warnings(self, enabled: bool) -> '_ScaledAnalysis':
        self.analysis.unsupported_ops_warnings(enabled)
        return self

    def uncalled_modules_warnings(self, enabled: bool) -> '_ScaledAnalysis':
        self.analysis.uncalled_modules_warnings(enabled)
        return self

    def tracer_warnings(self, mode: str) -> '_ScaledAnalysis':
        self.analysis.tracer_warnings(mode)
        return self


def block_per_kind_analysis(model: nn.Module, inputs: Any) -> _ScaledAnalysis:
    """``flop_analysis`` of ``model(*inputs)`` with one InternViT block traced per kind (module doc);
    ``by_module()`` and fvcore's ``flop_count_table`` give the counts of the full trace."""
    with _blocks_pass_through(model) as repeats:
        analysis = flop_analysis(model, inputs)
        analysis.by_module()  # the trace runs here, while the repeats pass through
    return _ScaledAnalysis(analysis, repeats)


def without_weights(model: nn.Module) -> nn.Module:
    """A model built on the meta device -> the same on the CPU with storage never written (read as
    zeros, no memory committed) and no autograd, for counting. Its values are meaningless."""
    return model.to_empty(device='cpu').requires_grad_(False).eval()


def vit_flops(arch: dict, height: int, width: int, window_size: int = 0, global_attn_indexes: Iterable[int] = (),
              use_cls_token: bool = True, num_layers: Optional[int] = None) -> int:
    """Multiply-adds of InternViT's patch embedding and blocks on an image of ``height`` x ``width``:
    per block qkv 3NC^2, proj NC^2, MLP 2NCH, attention 2 N_q N_k C over each attention's tokens (in
    windowed blocks: the grid padded to whole windows for attention, the cls token left out)."""
    c, p = arch['embed_dims'], arch['patch_size']
    hidden = int(c * arch['mlp_ratio'])
    gh, gw = -(-height // p), -(-width // p)
    tokens = gh * gw + (1 if use_cls_token else 0)
    total = gh * gw * 3 * p * p * c  # patch embedding
    globals_ = set(global_attn_indexes)
    for i in range(num_layers or arch['num_layers']):
        if window_size and i not in globals_:
            # the cls token skips windowed blocks; qkv and proj run on the padded windows, the MLP on the grid
            wh, ww = -(-gh // window_size), -(-gw // window_size)
            padded = wh * ww * window_size * window_size
            total += padded * 4 * c * c + gh * gw * 2 * c * hidden + wh * ww * 2 * (window_size ** 2) ** 2 * c
        else:
            total += tokens * (4 * c * c + 2 * c * hidden) + 2 * tokens * tokens * c
    return total


def parameter_counts(model: nn.Module, trainable: Optional[Sequence[bool]] = None) -> tuple[int, int]:
    """(trainable, frozen) parameter counts (by ``requires_grad``, or by ``trainable`` when given)."""
    params = list(model.parameters())
    flags = trainable if trainable is not None else [p.requires_grad for p in params]
    on = sum(p.numel() for p, t in zip(params, flags) if t)
    return on, sum(p.numel() for p in params) - on


def torch_flops(model: nn.Module, inputs: tuple) -> int:
    """``FlopCounterMode``'s count of ``model(*inputs)`` halved to fvcore's convention (runs on meta)."""
    from torch.utils.flop_counter import FlopCounterMode
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*inputs)
    return counter.get_total_flops() // 2
