"""Pure functions that adapt a ViT's position embedding and patch kernel to other sizes.

- ``resample_pos_embed``: bicubic interpolation of the patch-grid part of an absolute position
  embedding (the cls entry is kept), computed in fp32 and returned in the input dtype. The same
  function serves at run time (any input size) and when a checkpoint of another grid is loaded.
- ``fit_pos_embed``: a position embedding of any square grid (a checkpoint's) -> the grid a model
  holds, resampled by ``resample_pos_embed``, or refused when its entries are no square grid.
- ``resample_patch_embed``: resizes a patch-embedding kernel (14x14 -> 16x16 for the detection
  recipe) by the pseudo-inverse resize of FlexiViT (Beyer et al., CVPR 2023), which keeps the
  token of an up-sampled patch equal to the original one, <resize(x), w_new> = <x, w>, rather than
  interpolating the weights themselves.
"""
from functools import lru_cache
from typing import Optional

import torch
import torch.nn.functional as F


def resample_pos_embed(pos_embed: torch.Tensor, src_grid: tuple[int, int],
                       dst_grid: tuple[int, int], num_prefix_tokens: int = 1) -> torch.Tensor:
    """Resample ``pos_embed`` [1, prefix + Hs*Ws, C] to [1, prefix + Hd*Wd, C] (bicubic, fp32)."""
    if tuple(src_grid) == tuple(dst_grid):
        return pos_embed
    expected = num_prefix_tokens + src_grid[0] * src_grid[1]
    if pos_embed.shape[1] != expected:
        raise ValueError(f'position embedding has {pos_embed.shape[1]} entries, expected {expected} '
                         f'for a {src_grid[0]}x{src_grid[1]} grid plus {num_prefix_tokens} prefix token(s)')
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    # [1, Hs*Ws, C] -> [1, C, Hs, Ws]
    grid = grid.float().reshape(1, src_grid[0], src_grid[1], -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=tuple(dst_grid), mode='bicubic', align_corners=False)
    grid = grid.permute(0, 2, 3, 1).flatten(1, 2).to(pos_embed.dtype)
    return torch.cat([prefix, grid], dim=1)


def fit_pos_embed(pos_embed: torch.Tensor, dst_grid: tuple[int, int], num_prefix_tokens: int,
                  source: str) -> tuple[torch.Tensor, Optional[tuple[int, int]]]:
    """A checkpoint's ``pos_embed`` [1, prefix + S*S, C] -> the model's grid ``dst_grid``: (the embedding,
    the square grid it was resampled from, or None when it already fits). Entries that are not
    ``num_prefix_tokens`` plus a square grid are a ``ValueError`` naming ``source`` and ``pos_embed``."""
    entries = pos_embed.shape[1] - num_prefix_tokens
    if entries == dst_grid[0] * dst_grid[1]:
        return pos_embed, None
    side = round(max(entries, 0) ** 0.5)
    if entries <= 0 or side * side != entries:
        raise ValueError(f'{source}: pos_embed has {pos_embed.shape[1]} entries, which is not {num_prefix_tokens} '
                         f'+ a square grid (the model holds {num_prefix_tokens} + {dst_grid[0]}x{dst_grid[1]})')
    return resample_pos_embed(pos_embed, (side, side), dst_grid, num_prefix_tokens), (side, side)


@lru_cache(maxsize=8)
def _pinv_resize_matrix(src: tuple[int, int], dst: tuple[int, int]) -> torch.Tensor:
    """[Hs*Ws, Hd*Wd] matrix P with ``w_new = w_old @ P`` (flattened kernels), in fp64."""
    eye = torch.eye(src[0] * src[1], dtype=torch.float64).reshape(-1, 1, *src)
    # Column i of `resize` is the bilinear up-sampling of the i-th one-hot kernel.
    resize = F.interpolate(eye, size=dst, mode='bilinear', align_corners=False, antialias=True)
    resize = resize.reshape(src[0] * src[1], -1).T  # B: [Hd*Wd, Hs*Ws], resize(x) = B x
    # <B x, w_new> = <x, w> for all x  <=>  B^T w_new = w; least-norm solution w_new^T = w^T pinv(B).
    return torch.linalg.pinv(resize)  # [Hs*Ws, Hd*Wd]


def resample_patch_embed(weight: torch.Tensor, new_size: tuple[int, int]) -> torch.Tensor:
    """Resize a conv kernel [C_out, C_in, Hs, Ws] to [C_out, C_in, *new_size] (pseudo-inverse resize)."""
    src = tuple(weight.shape[-2:])
    if src == tuple(new_size):
        return weight
    matrix = _pinv_resize_matrix(src, tuple(new_size))
    flat = weight.double().flatten(2) @ matrix  # [C_out, C_in, Hd*Wd]
    return flat.reshape(*weight.shape[:2], *new_size).to(weight.dtype)
