"""Non-overlapping window attention over the patch grid (ViTDet, Li et al. ECCV 2022).

A windowed block sees the grid tokens cut into ``window x window`` squares, each square a separate
sequence. The grid is padded at the bottom / right to a multiple of the window; the padded tokens are
masked out of attention as keys, so a border window attends exactly its real tokens, and they are
dropped again afterwards. Every window holds at least one real token (the padding is smaller than a
window), so no query row is fully masked.
"""
from typing import Optional

import torch
import torch.nn.functional as F


def _partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """[B, Hp, Wp, C] (sides multiples of ``window``) -> [B * nH * nW, window * window, C]."""
    B, Hp, Wp, C = x.shape
    x = x.view(B, Hp // window, window, Wp // window, window, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, C)


def window_partition(tokens: torch.Tensor, grid: tuple[int, int], window: int
                     ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Grid tokens [B, h*w, C] -> (windows [B * nH * nW, window**2, C], key mask or None).

    The mask, when the grid needed padding, is boolean [B * nH * nW, 1, 1, window**2] (True: a real
    token), ready for ``scaled_dot_product_attention``.
    """
    B, _, C = tokens.shape
    h, w = grid
    pad_h, pad_w = -h % window, -w % window
    x = tokens.view(B, h, w, C)
    if not (pad_h or pad_w):
        return _partition(x, window), None
    x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    real = torch.zeros(1, h + pad_h, w + pad_w, 1, dtype=torch.bool, device=tokens.device)
    real[:, :h, :w] = True
    mask = _partition(real, window).view(-1, 1, 1, window * window)  # [nH * nW, 1, 1, L]
    return _partition(x, window), mask.repeat(B, 1, 1, 1)


def window_unpartition(windows: torch.Tensor, grid: tuple[int, int], window: int) -> torch.Tensor:
    """Inverse of ``window_partition``: [B * nH * nW, window**2, C] -> grid tokens [B, h*w, C]."""
    h, w = grid
    Hp, Wp = h + (-h % window), w + (-w % window)
    nH, nW, C = Hp // window, Wp // window, windows.shape[-1]
    x = windows.view(-1, nH, nW, window, window, C).permute(0, 1, 3, 2, 4, 5).reshape(-1, Hp, Wp, C)
    return x[:, :h, :w].reshape(x.shape[0], h * w, C)
