"""Building blocks of InternViT (Chen et al., "InternVL", CVPR 2024): one pre-norm transformer block.

Every optional part (qk-norm, layer scale of 1.0, drop path) is a real module or ``nn.Identity``
chosen at construction, so there is a single forward path. Norms compute in fp32 and return the
input dtype, which keeps a bf16 backbone numerically close to the fp32 one.

On the CPU the element-wise work between the matrix products costs as much in memory traffic
(fresh allocations are page-faulted in) as in arithmetic, so the block fuses where it can: the
residual add, layer scale and stochastic depth are one ``addcmul``; RMSNorm reduces with a fused
vector norm; and where autograd records nothing (inference, a frozen backbone) the weight of the
norm is applied in place and fp32 linear layers run through oneDNN's matmul with the GELU fused in
(``linear``) on CPUs where that is faster than the default BLAS path (measured once per process: about
20% faster on some of these machines' CPUs, as much slower on others).
"""
import functools
import logging
import time
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .window import window_partition, window_unpartition

logger = logging.getLogger(__name__)


def _recorded(*tensors: torch.Tensor) -> bool:
    """Whether autograd records an op on ``tensors`` (then in-place updates are not allowed)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _find_onednn_linear() -> Optional[Callable]:
    """oneDNN's fused linear (+ GELU) op, or None. It is private to torch: its signature is checked here,
    on a small input against ``F.linear`` + GELU, and any change (missing op, other arguments, other
    result) makes ``linear`` use ``F.linear`` everywhere instead."""
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


@functools.cache
def onednn_linear() -> Optional[Callable]:
    """The oneDNN op when it is intact (``_find_onednn_linear``) and faster here; decided once, at the
    first inference-path call, and logged."""
    op = _find_onednn_linear()
    if op is not None and not _faster_than_aten(op):
        op = None
    logger.info('InternViT CPU inference linear layers: %s', 'oneDNN (fused GELU)' if op else "aten's BLAS")
    return op


def linear(x: torch.Tensor, layer: nn.Linear, gelu: bool = False) -> torch.Tensor:
    """``layer(x)``, then exact GELU if ``gelu``. Without autograd and outside autocast, fp32 on the CPU
    goes through oneDNN's matmul (GELU fused into it) where that is faster; that op has no backward,
    and autocast must pick the dtype itself, so training and autocast use ``F.linear`` (as does
    tracing: FLOP counters know aten's ops, and the tracer fails on oneDNN's)."""
    op = None
    if (x.device.type == 'cpu' and x.dtype == torch.float32 and layer.weight.dtype == torch.float32
            and not _recorded(x, layer.weight) and not torch.is_autocast_enabled('cpu')
            and not torch.jit.is_tracing()):
        op = onednn_linear()
    if op is not None:
        return op(x, layer.weight, layer.bias, 'gelu' if gelu else 'none', [], 'none' if gelu else '')
    out = F.linear(x, layer.weight, layer.bias)
    return F.gelu(out) if gelu else out


def _inv_rms(xf: torch.Tensor, eps: float) -> torch.Tensor:
    """1 / sqrt(mean(x^2) + eps) over the last dimension of fp32 ``xf``: [..., 1], from the fused 2-norm
    (no full-size temporaries)."""
    return torch.rsqrt(torch.linalg.vector_norm(xf, dim=-1, keepdim=True).square() / xf.shape[-1] + eps)


class _RMSNormFunction(torch.autograd.Function):
    """RMSNorm with a hand-written backward: it keeps the input and the [..., 1] inverse RMS (not the
    normalised tensor) and computes the input gradient in three fused passes,
    ``dx = inv_rms * (g*w - x_hat * mean(g*w * x_hat))``, where autograd's chain of the forward's
    element-wise ops takes about twice as many."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        inv_rms = _inv_rms(x.float(), eps)
        ctx.save_for_backward(x, weight, inv_rms)
        return (x.float() * inv_rms).to(x.dtype) * weight

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor], None]:
        x, weight, inv_rms = ctx.saved_tensors
        x_hat = x.float() * inv_rms
        grad_weight = None
        if ctx.needs_input_grad[1]:
            grad_weight = (grad * x_hat.to(x.dtype)).reshape(-1, weight.shape[0]).sum(0).to(weight.dtype)
        grad_x = None
        if ctx.needs_input_grad[0]:
            g = grad.float() * weight.float()
            grad_x = torch.addcmul(g, x_hat, (g * x_hat).mean(-1, keepdim=True), value=-1).mul_(inv_rms).to(x.dtype)
        return grad_x, grad_weight, None


class RMSNorm(nn.Module):
    """Root-mean-square norm over the last dimension, computed in fp32 (InternViT-6B's norm)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _recorded(x, self.weight):
            return _RMSNormFunction.apply(x, self.weight, self.eps)
        normed = (x.float() * _inv_rms(x.float(), self.eps)).to(x.dtype)
        return normed.mul_(self.weight.to(normed.dtype))  # bf16 activations under autocast, fp32 weight

    def extra_repr(self) -> str:
        return f'{self.weight.shape[0]}, eps={self.eps}'


class FP32LayerNorm(nn.LayerNorm):
    """LayerNorm computed in fp32 and cast back (InternViT-300M's norm)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        return F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps).to(x.dtype)


class LayerNorm2d(FP32LayerNorm):
    """LayerNorm over the channels of an NCHW map [B, C, H, W], computed in fp32 and cast back (the
    simple FPN's norm; the ViT-Adapter's spatial-prior and output norms, as in the original)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


NORM_LAYERS: dict[str, Callable[..., nn.Module]] = {'rms': RMSNorm, 'ln': FP32LayerNorm}


class LayerScale(nn.Module):
    """Residual branch with a per-channel scale ``gamma`` (CaiT), stored as ``ls{1,2}.gamma``.

    ``forward(residual, branch, sample_scale)`` returns ``residual + sample_scale * gamma * branch`` in
    one fused op; ``sample_scale`` [B, 1, 1] carries stochastic depth (see ``DropPath``) or is None.
    """

    def __init__(self, dim: int, init_value: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, residual: torch.Tensor, branch: torch.Tensor,
                sample_scale: Optional[torch.Tensor] = None) -> torch.Tensor:
        gamma = self.gamma if sample_scale is None else sample_scale * self.gamma
        return torch.addcmul(residual, branch, gamma.to(branch.dtype))


class DropPath(nn.Module):
    """Stochastic depth per sample (Huang et al., 2016) as a factor for ``LayerScale``.

    Returns a [B, 1, 1] tensor of 0 or 1/keep in training, None (keep everything) in eval mode.
    """

    def __init__(self, drop_prob: float) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> Optional[torch.Tensor]:
        if not self.training or self.drop_prob == 0.0:
            return None
        keep = 1.0 - self.drop_prob
        return x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep).div_(keep)

    def extra_repr(self) -> str:
        return f'drop_prob={self.drop_prob}'


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (rows q | k | v, as in the checkpoints).

    InternViT-6B normalises q and k with an RMSNorm over the whole embedding (all heads together,
    ``dim`` features), not per head: that is what its checkpoints hold (``q_norm.weight`` of shape
    ``[dim]``), so timm's per-head ``qk_norm`` would be a different function.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool, qk_norm: bool,
                 norm_layer: Callable[..., nn.Module]) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'embed_dims={dim} is not divisible by num_heads={num_heads}')
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.q_norm = norm_layer(dim) if qk_norm else nn.Identity()
        self.k_norm = norm_layer(dim) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``x``: [B, N, C] -> [B, N, C]; ``attn_mask``: boolean, broadcastable to [B, heads, N, N], True
        where a query may attend a key (the padded tokens of a window are masked out)."""
        B, N, C = x.shape
        q, k, v = linear(x, self.qkv).chunk(3, dim=-1)
        q, k = self.q_norm(q), self.k_norm(k)
        # [B, N, C] -> [B, heads, N, head_dim]. The CPU flash-attention kernel runs about 1.5x faster
        # with q and k laid out contiguously in that order (measured at N=257, C=1024); v may stay a view.
        q, k = (t.unflatten(-1, (self.num_heads, -1)).transpose(1, 2).contiguous() for t in (q, k))
        v = v.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # [B, heads, N, head_dim]
        return linear(x.transpose(1, 2).reshape(B, N, C), self.proj)


class Mlp(nn.Module):
    """fc1 -> exact GELU -> fc2."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(linear(x, self.fc1, gelu=True), self.fc2)


class Block(nn.Module):
    """Pre-norm block: ``x + drop(ls1 * attn(norm1(x)))``, then ``x + drop(ls2 * mlp(norm2(x)))``.

    ``window_size`` > 0 makes the attention windowed (``internvl.models.window``): the block then takes
    the grid tokens only (no cls token) and their grid (h, w); norms, MLP and stochastic depth still act
    on the whole image, so a dropped path drops it for the image, not for one window.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, norm_type: str, qk_norm: bool,
                 qkv_bias: bool, layer_scale_init: float, drop_path: float = 0.0,
                 norm_eps: float = 1e-6, window_size: int = 0) -> None:
        super().__init__()
        norm_layer = NORM_LAYERS[norm_type]
        self.norm1 = norm_layer(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias, qk_norm,
                              lambda d: norm_layer(d, eps=norm_eps))
        self.ls1 = LayerScale(dim, layer_scale_init)
        self.norm2 = norm_layer(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, layer_scale_init)
        self.drop_path = DropPath(drop_path)
        self.window_size = window_size

    def _attention(self, x: torch.Tensor, grid: Optional[tuple[int, int]]) -> torch.Tensor:
        if not self.window_size:
            return self.attn(x)
        if grid is None or grid[0] * grid[1] != x.shape[1]:
            raise ValueError(f'a windowed block takes the {x.shape[1]} grid tokens and their grid, got grid={grid}')
        windows, mask = window_partition(x, grid, self.window_size)
        return window_unpartition(self.attn(windows, mask), grid, self.window_size)

    def forward(self, x: torch.Tensor, grid: Optional[tuple[int, int]] = None) -> torch.Tensor:
        """``x``: [B, N, C] -> [B, N, C]; ``grid``: (h, w) with h * w = N, needed when windowed."""
        x = self.ls1(x, self._attention(self.norm1(x), grid), self.drop_path(x))
        return self.ls2(x, self.mlp(self.norm2(x)), self.drop_path(x))

    def extra_repr(self) -> str:
        return f'window_size={self.window_size}' if self.window_size else ''
