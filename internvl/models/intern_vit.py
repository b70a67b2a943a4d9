"""InternViT, the vision foundation model of InternVL (Chen et al., CVPR 2024), for dense prediction.

One class serves every published size; the variants are entries of ``ARCH_PRESETS`` (or a dict with
the same keys). The model is a plain pre-norm ViT: a conv patch embedding with bias, a learnable cls
token, an absolute position embedding of ``1 + (img_size / patch_size)**2`` entries, and blocks with
RMSNorm + whole-embedding qk-norm (6B) or LayerNorm + qkv bias (300M). There is no final norm.

Dense features: ``forward`` returns, for each index in ``out_indices``, the output of that block
(0-based, after both residual adds, cls token dropped) as an NCHW map of stride ``patch_size``.

Inputs of any size are accepted: a side that is not a multiple of the patch size is zero-padded at the
bottom / right (as mmseg's ViT does), so the maps have ``ceil(H / p) x ceil(W / p)`` cells, the last
row / column covering the padding. The position embedding is held at the grid of ``img_size`` (the
arch's pretraining size unless given: timm's ``img_size``; the segmentation recipes hold it at the
504 crop's 36 x 36 grid, as the original code did) and interpolated bicubically from that grid at run
time for any other input grid. A state dict whose ``pos_embed`` has another square grid - a
pretraining checkpoint, a segmentor released at its fine-tuning grid - is resampled (bicubic, as the
original resampled its pretrained one) by whatever loads it, ``load_state_dict`` included, and logged.

Detection options (ViTDet, Li et al. ECCV 2022): ``window_size`` > 0 makes every block not listed in
``global_attn_indexes`` attend within non-overlapping windows of the patch grid (``window.py``: the
grid padded to a multiple of the window, the padding masked out); the cls token skips windowed blocks
(it is carried through them unchanged). ``use_cls_token=False`` drops the cls token and its position
entry altogether; a checkpoint's are then discarded on load. A patch of 16 from the 14-pixel
checkpoints is a ``-p16`` preset (``internvl.arch``: ``patch_size=16`` with the image size that keeps
the grid, 256 for 224px): the loader resizes the kernel and the position embedding.

Weights: construction never reads files; ``init_weights()`` initialises them and, when
``pretrained`` is set, loads that checkpoint in any published format (see ``internvl.checkpoint``).
"""
import logging
from typing import Any, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..arch import ARCH_KEYS, ARCH_PRESETS, resolve_arch
from ..checkpoint import infer_arch, load_canonical, load_pretrained, read_canonical
from ..pos_embed import fit_pos_embed, resample_pos_embed
from .block import Block

logger = logging.getLogger(__name__)

class InternViT(nn.Module):
    """InternViT backbone returning block outputs as NCHW feature maps.

    Args:
        arch: preset name from ``ARCH_PRESETS`` or a dict with the keys ``ARCH_KEYS``.
        drop_path_rate: stochastic-depth rate of the last block, rising linearly from 0.
        with_cp: recompute each block in the backward pass (activation checkpointing) whenever gradients
            flow through it - in eval mode too (a frozen ViT inside the ViT-Adapter).
        out_indices: 0-based block indices whose outputs are returned; negative counts from the end.
        pretrained: checkpoint file or directory loaded by ``init_weights()`` (any published format).
        window_size: side of the attention windows in patches; 0 = global attention in every block.
        global_attn_indexes: blocks that keep global attention when ``window_size`` > 0.
        use_cls_token: keep the learnable cls token (False: no cls token, no position entry for it).
        img_size: the image size whose patch grid the position embedding is held at (default: the
            arch's ``img_size``, the pretraining one); it becomes ``self.arch['img_size']``.
    """

    def __init__(self, arch: Union[str, dict] = 'internvit-6b-224px', drop_path_rate: float = 0.0,
                 with_cp: bool = False, out_indices: Sequence[int] = (-1,),
                 pretrained: Optional[str] = None, window_size: int = 0,
                 global_attn_indexes: Sequence[int] = (), use_cls_token: bool = True,
                 img_size: Optional[int] = None) -> None:
        super().__init__()
        self.arch = resolve_arch(arch if img_size is None else dict(resolve_arch(arch), img_size=img_size))
        self.arch_name = (arch if isinstance(arch, str) else 'custom') + (f', img_size={img_size}' if img_size else '')
        a = self.arch
        self.embed_dims, self.num_layers, self.patch_size = a['embed_dims'], a['num_layers'], a['patch_size']
        self.pretrain_grid = (a['img_size'] // self.patch_size,) * 2
        self.out_indices = self._normalise_indices(out_indices, self.num_layers)
        self.with_cp = with_cp
        self.pretrained = pretrained
        if window_size < 0:
            raise ValueError(f'window_size={window_size}; expected 0 (global attention) or a positive number of patches')
        self.window_size = window_size
        self.global_attn_indexes = self._normalise_indices(global_attn_indexes, self.num_layers, allow_empty=True)
        self.num_prefix_tokens = 1 if use_cls_token else 0

        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, self.embed_dims, self.patch_size, self.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, self.embed_dims)) if use_cls_token else None
        num_positions = self.num_prefix_tokens + self.pretrain_grid[0] * self.pretrain_grid[1]
        self.pos_embed = nn.Parameter(torch.zeros(1, num_positions, self.embed_dims))
        rates = [drop_path_rate * i / max(self.num_layers - 1, 1) for i in range(self.num_layers)]
        self.blocks = nn.ModuleList(
            Block(self.embed_dims, a['num_heads'], a['mlp_ratio'], a['norm_type'], a['qk_norm'],
                  a['qkv_bias'], a['layer_scale_init'], drop_path=rate,
                  window_size=0 if i in self.global_attn_indexes else window_size)
            for i, rate in enumerate(rates))
        self.reset_parameters()

    @staticmethod
    def _normalise_indices(indices: Sequence[int], num_layers: int, allow_empty: bool = False) -> tuple[int, ...]:
        if isinstance(indices, int):
            indices = (indices,)
        out = []
        for i in indices:
            if not -num_layers <= i < num_layers:
                raise ValueError(f'block index {i} is out of range for {num_layers} blocks '
                                 f'(allowed: {-num_layers}..{num_layers - 1})')
            out.append(i % num_layers)
        if not out and not allow_empty:
            raise ValueError('out_indices is empty')
        return tuple(out)

    def reset_parameters(self) -> None:
        """Random initialisation (truncated normal 0.02 for linear layers, embeddings and cls token)."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)
        w = self.patch_embed.proj.weight
        nn.init.trunc_normal_(w.view(w.shape[0], -1), std=0.02)
        nn.init.zeros_(self.patch_embed.proj.bias)
        for m in self.blocks.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def init_weights(self) -> None:
        """Load ``pretrained`` when set (random initialisation stays otherwise)."""
        if self.pretrained:
            load_pretrained(self, self.pretrained)

    @classmethod
    def from_pretrained(cls, path: str, **kwargs: Any) -> 'InternViT':
        """The architecture the checkpoint describes (config.json, our metadata, the run's config, else
        inferred from its shapes; ``arch`` in ``kwargs`` overrides it) with the checkpoint loaded; the
        files are read once. The ViT options the checkpoint states (windowing, cls token) apply too."""
        ckpt, ckpt_arch = read_canonical(path)
        if 'arch' not in kwargs:
            kwargs['arch'] = ckpt_arch or infer_arch(ckpt.state_dict, ARCH_PRESETS, str(path))
        kwargs = {'use_cls_token': 'cls_token' in ckpt.state_dict, **ckpt.options, **kwargs}
        model = cls(**kwargs)
        load_canonical(model, ckpt, ckpt_arch, str(path), strict=True)
        return model

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any, **kwargs: Any) -> None:
        """``load_state_dict`` (torch's, mmengine's) with a ``pos_embed`` of another square grid: resampled
        to the grid held here (``fit_pos_embed``), logged; other entry counts are an error naming it."""
        key = prefix + 'pos_embed'
        pos = state_dict.get(key)
        if pos is not None and pos.shape[1] != self.pos_embed.shape[1] and pos.shape[-1] == self.embed_dims:
            state_dict[key], src_grid = fit_pos_embed(pos, self.pretrain_grid, self.num_prefix_tokens,
                                                      f'state dict entry {key}')
            logger.info('%s: position embedding resampled from a %dx%d grid to the %dx%d held here', key,
                        *src_grid, *self.pretrain_grid)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def no_weight_decay(self) -> set[str]:
        return {'pos_embed', 'cls_token'}

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Images [B, 3, H, W] -> tokens [B, P + h*w, C] with position embedding (P = ``num_prefix_tokens``:
        1 with the cls token, else 0), and the grid (h, w) = (ceil(H / p), ceil(W / p)): sides are
        zero-padded at the bottom / right to the patch."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f'InternViT takes images [B, 3, H, W], got a tensor of shape {list(x.shape)}')
        H, W = x.shape[-2:]
        p = self.patch_size
        if H % p or W % p:
            x = F.pad(x, (0, -W % p, 0, -H % p))
        x = self.patch_embed.proj(x)  # [B, C, h, w]
        grid = (x.shape[2], x.shape[3])
        x = x.flatten(2).transpose(1, 2)  # [B, h*w, C]
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        pos_embed = resample_pos_embed(self.pos_embed, self.pretrain_grid, grid, self.num_prefix_tokens)
        return x + pos_embed.to(x.dtype), grid

    def run_blocks(self, x: torch.Tensor, grid: tuple[int, int], start: int, stop: int) -> torch.Tensor:
        """Tokens [B, P + h*w, C] through blocks ``start`` .. ``stop - 1`` (the ViT-Adapter runs them in
        stretches between its interactions)."""
        for block in self.blocks[start:stop]:
            x = self._run_block(block, x, grid)
        return x

    def _run_block(self, block: Block, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        prefix = None
        if block.window_size and self.num_prefix_tokens:  # the cls token skips windowed blocks
            prefix, x = x[:, :self.num_prefix_tokens], x[:, self.num_prefix_tokens:]
        # Whenever gradients flow through the block, not only in training mode: a frozen ViT is kept in
        # eval mode, yet the ViT-Adapter back-propagates through its blocks into the injectors.
        if self.with_cp and torch.is_grad_enabled() and x.requires_grad:
            x = checkpoint(block, x, grid, use_reentrant=False)
        else:
            x = block(x, grid)
        return x if prefix is None else torch.cat([prefix, x], dim=1)

    def to_map(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Tokens [B, P + h*w, C] -> the grid part as an NCHW map [B, C, h, w]."""
        return x[:, self.num_prefix_tokens:].transpose(1, 2).reshape(x.shape[0], -1, *grid)

    def forward_intermediates(self, x: torch.Tensor, indices: Sequence[int]) -> list[torch.Tensor]:
        """Outputs of blocks ``indices`` (0-based, sorted or not) as NCHW maps [B, C, H/p, W/p].

        Blocks after the last requested index are not run.
        """
        indices = self._normalise_indices(indices, self.num_layers)
        x, grid = self.embed(x)
        wanted = {}
        for i, block in enumerate(self.blocks[:max(indices) + 1]):
            x = self._run_block(block, x, grid)
            if i in indices:
                wanted[i] = self.to_map(x, grid)
        return [wanted[i] for i in indices]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Images [B, 3, H, W] -> tuple of [B, C, H/p, W/p], one per ``out_indices`` entry."""
        return tuple(self.forward_intermediates(x, self.out_indices))

    def extra_repr(self) -> str:
        window = f', window_size={self.window_size}, global_attn_indexes={self.global_attn_indexes}' \
            if self.window_size else ''
        return (f'arch={self.arch_name}, out_indices={self.out_indices}, with_cp={self.with_cp}, '
                f'use_cls_token={self.cls_token is not None}{window}')


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_on_meta(arch: Union[str, dict], **kwargs: Any) -> InternViT:
    """Build an InternViT on the meta device (no memory, no initialisation cost), e.g. to count params."""
    with torch.device('meta'):
        return InternViT(arch, **kwargs)


__all__ = ['ARCH_KEYS', 'ARCH_PRESETS', 'InternViT', 'build_on_meta', 'count_parameters', 'resolve_arch']
