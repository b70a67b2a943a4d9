"""Building blocks of InternViT (Chen et al., "InternVL", CVPR 2024): one pre-norm transformer block.

Every optional part (qk-norm, layer scale of 1.0, drop path) is a real module or ``nn.Identity``
chosen at construction, so there is a single forward path. Norms compute in fp32 and return the
input dtype, which keeps a bf16 backbone numerically close to the fp32 one.

On the CPU the element-wise work between the matrix products costs as much in memory traffic
(fresh allocations are page-faulted in) as in arithmetic, so the block fuses where it can: the
residual add, layer scale and stochastic depth are one ``addcmul``; the norms (``norms.py``) reduce
with a fused vector norm; the linear layers take the CPU back-end chosen for the process
(``linear.py``).
"""
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .linear import linear
from .norms import NORM_LAYERS
from .window import window_partition, window_unpartition


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
