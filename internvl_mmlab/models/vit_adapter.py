"""ViT-Adapter (Chen et al., "Vision Transformer Adapter for Dense Predictions", ICLR 2023) on the core
InternViT, registered as ``InternViTAdapter`` in mmengine's root ``MODELS`` (searched by mmseg's and
mmdet's registries).

A plain ViT has one stride (16) and no image prior; the adapter gives it a convolutional spatial prior
and returns a four-level pyramid, leaving the ViT's own blocks untouched (so a frozen, pretrained ViT
works):

- ``SpatialPriorModule``: a conv stem to stride 4, then strides 8, 16, 32, each projected to the ViT
  width: ``c1`` (a map at stride 4) and ``c`` = the stride 8 / 16 / 32 maps flattened and
  concatenated (plus a learned embedding per level).
- per interaction ``[first, last]`` (inclusive block ranges covering the ViT): an ``Injector`` (ViT
  tokens query the three spatial levels by deformable attention; ``x + gamma * attn``, gamma
  initialised to ``init_values`` = 0 so the pretrained ViT starts unchanged), the ViT blocks of the
  range, then an ``Extractor`` (the spatial tokens query the ViT tokens; ``c + attn``, then
  ``c + ConvFFN(c)``). The last interaction has two more extractors when ``use_extra_extractor``.
- output: the stride 8 / 16 / 32 tokens back into maps, ``c1`` plus the stride 8 map up-sampled by a
  transposed conv, the ViT map added at each scale (``add_vit_feature``; bilinear resizes), and a
  norm per level (``use_final_norm``): four fp32 maps of ``embed_dims`` channels at strides 4, 8, 16, 32.

As InternVL-MMDetSeg's ``InternViTAdapter`` (the ADE20K 58.1 model) builds it: the spatial prior's
norms and the four output norms are channels-first LayerNorms (eps 1e-6) computed in fp32, the
injectors' and extractors' LayerNorms have eps 1e-5 (``nn.LayerNorm``'s default), the ViT has no cls
token (``use_cls_token=False`` is this class's default), and activation checkpointing (``with_cp``)
applies to the ViT's blocks, the injectors and the extractors whenever gradients flow through them -
a frozen ViT in eval mode included.

Deformable attention is mmcv's ``MultiScaleDeformableAttention`` (batch-first, no dropout, value
projection ratio ``deform_ratio``); it runs mmcv's compiled op on GPUs (fp32 or fp16; bf16 runs on an
fp32 upcast, ``internvl_mmlab.precision.deform_attn_dtype``) and ``multi_scale_deformable_attn_pytorch``
(grid_sample, any dtype) on the CPU. Reference points are normalised (x, y) centres of the query grid,
as mmcv expects.

The input sides must be multiples of 32 (pad them, as mmdet's ``DetDataPreprocessor`` with
``pad_size_divisor=32`` does) and the ViT's patch must be 16. A cls token, if ``use_cls_token=True``
keeps one, takes no part in the interactions.

Precision: the ViT runs as ``InternViTBackbone`` runs it (``frozen``, ``backbone_dtype``); the adapter
runs in the dtype of its own weights, so the ViT's tokens are cast at each crossing.
"""
import math
from typing import Any, Callable, Sequence, Union

import torch
import torch.nn.functional as F
from mmcv.ops import MultiScaleDeformableAttention
from torch import nn
from torch.func import functional_call
from torch.utils.checkpoint import checkpoint

from internvl.models.block import DropPath
from internvl.models.norms import LayerNorm2d

from ..precision import deform_attn_dtype
from .backbone import InternViTBackbone

# Strides of the spatial prior's token levels, and the ViT's (the adapter is built around patch 16).
LEVEL_STRIDES = (8, 16, 32)
VIT_STRIDE = 16


def reference_points(shapes: Sequence[tuple[int, int]], device: torch.device) -> torch.Tensor:
    """Normalised (x, y) centres of the cells of each grid in ``shapes``, concatenated: [1, sum(h*w), 1, 2]."""
    points = []
    for h, w in shapes:
        y, x = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32).add_(0.5).div_(h),
                              torch.arange(w, device=device, dtype=torch.float32).add_(0.5).div_(w), indexing='ij')
        points.append(torch.stack([x.flatten(), y.flatten()], -1))
    return torch.cat(points)[None, :, None]


def level_layout(shapes: Sequence[tuple[int, int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(spatial_shapes [L, 2] as (h, w), level_start_index [L]) as mmcv's deformable attention takes them."""
    spatial = torch.as_tensor(shapes, dtype=torch.long, device=device)
    starts = torch.cat([spatial.new_zeros(1), spatial.prod(1).cumsum(0)[:-1]])
    return spatial, starts


def deformable_attention(attn: MultiScaleDeformableAttention, query: torch.Tensor, value: torch.Tensor,
                         points: torch.Tensor, shapes: Sequence[tuple[int, int]]) -> torch.Tensor:
    """mmcv's deformable attention of ``query`` [B, Nq, C] over ``value`` [B, Nv, C] laid out as the
    grids ``shapes``, without mmcv's residual: it adds ``identity``, here a zero scalar.

    The sampling kernel computes in the dtype of the projected values. Where mmcv's kernel for the
    device does not take it (bf16 on CUDA) the attention runs on fp32 copies of its inputs and weights
    (gradients flow back to the weights through the copies) and its output is cast back."""
    spatial, starts = level_layout(shapes, query.device)
    dtype = attn.value_proj.weight.dtype
    if torch.is_autocast_enabled(query.device.type):
        dtype = torch.get_autocast_dtype(query.device.type)
    run_dtype = deform_attn_dtype(dtype, query.device)
    if run_dtype == dtype:  # points in the kernel's dtype, as mmcv's CUDA path casts them (its CPU path does not)
        return attn(query, value=value, identity=query.new_zeros(()), reference_points=points.to(dtype),
                    spatial_shapes=spatial, level_start_index=starts)
    weights = {name: p.to(run_dtype) for name, p in attn.named_parameters()}
    with torch.autocast(query.device.type, enabled=False):
        out = functional_call(attn, weights, (query.to(run_dtype),), dict(
            value=value.to(run_dtype), identity=query.new_zeros((), dtype=run_dtype), reference_points=points,
            spatial_shapes=spatial, level_start_index=starts))
    return out.to(query.dtype)


def _conv_norm_relu(in_channels: int, out_channels: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False), LayerNorm2d(out_channels, eps=1e-6),
            nn.ReLU(inplace=True)]


class SpatialPriorModule(nn.Module):
    """Conv stem: image [B, 3, H, W] -> (c1 [B, D, H/4, W/4], c [B, N8 + N16 + N32, D]); each conv is
    followed by a channels-first LayerNorm (fp32) and a ReLU."""

    def __init__(self, inplanes: int, embed_dims: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(*_conv_norm_relu(3, inplanes, 2), *_conv_norm_relu(inplanes, inplanes, 1),
                                  *_conv_norm_relu(inplanes, inplanes, 1), nn.MaxPool2d(3, 2, 1))
        self.conv2 = nn.Sequential(*_conv_norm_relu(inplanes, 2 * inplanes, 2))
        self.conv3 = nn.Sequential(*_conv_norm_relu(2 * inplanes, 4 * inplanes, 2))
        self.conv4 = nn.Sequential(*_conv_norm_relu(4 * inplanes, 4 * inplanes, 2))
        self.fc1, self.fc2, self.fc3, self.fc4 = (nn.Conv2d(c, embed_dims, 1) for c in
                                                  (inplanes, 2 * inplanes, 4 * inplanes, 4 * inplanes))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m1 = self.stem(x)
        m2 = self.conv2(m1)
        m3 = self.conv3(m2)
        m4 = self.conv4(m3)
        tokens = [fc(m).flatten(2).transpose(1, 2) for fc, m in ((self.fc2, m2), (self.fc3, m3), (self.fc4, m4))]
        return self.fc1(m1), torch.cat(tokens, dim=1)


class ConvFFN(nn.Module):
    """fc1 -> depthwise 3x3 conv over each level's map (shared weights) -> GELU -> fc2."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.dwconv = nn.Conv2d(hidden_dim, hidden_dim, 3, 1, 1, groups=hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor, shapes: Sequence[tuple[int, int]]) -> torch.Tensor:
        x = self.fc1(x)
        B, _, C = x.shape
        levels = x.split([h * w for h, w in shapes], dim=1)
        levels = [self.dwconv(t.transpose(1, 2).reshape(B, C, h, w)).flatten(2).transpose(1, 2)
                  for t, (h, w) in zip(levels, shapes)]
        return self.fc2(F.gelu(torch.cat(levels, dim=1)))


class Injector(nn.Module):
    """ViT tokens query the spatial levels: ``x + gamma * attn(norm(x), norm(c))``."""

    def __init__(self, dim: int, num_heads: int, num_points: int, deform_ratio: float, init_values: float) -> None:
        super().__init__()
        self.query_norm = nn.LayerNorm(dim)  # eps 1e-5, as the original's interactions
        self.feat_norm = nn.LayerNorm(dim)
        self.attn = MultiScaleDeformableAttention(dim, num_heads, len(LEVEL_STRIDES), num_points, dropout=0.0,
                                                  batch_first=True, value_proj_ratio=deform_ratio)
        self.gamma = nn.Parameter(torch.full((dim,), float(init_values)))

    def forward(self, x: torch.Tensor, c: torch.Tensor, points: torch.Tensor,
                shapes: Sequence[tuple[int, int]]) -> torch.Tensor:
        attn = deformable_attention(self.attn, self.query_norm(x), self.feat_norm(c), points, shapes)
        return x + self.gamma * attn


class Extractor(nn.Module):
    """Spatial tokens query the ViT tokens: ``c + attn(norm(c), norm(x))``, then ``c + ConvFFN(norm(c))``."""

    def __init__(self, dim: int, num_heads: int, num_points: int, deform_ratio: float, with_cffn: bool,
                 cffn_ratio: float, drop_path: float) -> None:
        super().__init__()
        self.query_norm = nn.LayerNorm(dim)  # eps 1e-5, as the original's interactions
        self.feat_norm = nn.LayerNorm(dim)
        self.attn = MultiScaleDeformableAttention(dim, num_heads, 1, num_points, dropout=0.0, batch_first=True,
                                                  value_proj_ratio=deform_ratio)
        self.ffn = ConvFFN(dim, int(dim * cffn_ratio)) if with_cffn else None
        self.ffn_norm = nn.LayerNorm(dim) if with_cffn else None
        self.drop_path = DropPath(drop_path)

    def forward(self, c: torch.Tensor, x: torch.Tensor, points: torch.Tensor, vit_grid: tuple[int, int],
                level_shapes: Sequence[tuple[int, int]]) -> torch.Tensor:
        c = c + deformable_attention(self.attn, self.query_norm(c), self.feat_norm(x), points, [vit_grid])
        if self.ffn is None:
            return c
        keep = self.drop_path(c)
        ffn = self.ffn(self.ffn_norm(c), level_shapes)
        return c + (ffn if keep is None else keep * ffn)


class InternViTAdapter(InternViTBackbone):
    """InternViT + ViT-Adapter: images [B, 3, H, W] (H, W multiples of 32) -> four maps [B, D, H/s, W/s]
    at strides s = 4, 8, 16, 32 (D = ``embed_dims``).

    Args: those of ``InternViTBackbone`` (``arch`` a ``-p16`` preset or ``patch_size=16``; ``out_indices`` and
    ``with_fpn`` do not apply) plus ``interaction_indexes`` (``[first, last]`` block ranges, inclusive,
    in order, covering every block without gaps), ``conv_inplane`` (stem width), ``n_points``,
    ``deform_num_heads``, ``deform_ratio``, ``init_values`` (injector gamma), ``cffn_ratio``,
    ``with_cffn``, ``add_vit_feature``, ``use_extra_extractor``, ``use_final_norm`` (the four output
    LayerNorms; without them the maps are returned as they are, in fp32). ``use_cls_token`` defaults
    to False, as the original.
    """

    def __init__(self, arch: Union[str, dict], interaction_indexes: Sequence[Sequence[int]],
                 conv_inplane: int = 64, n_points: int = 4, deform_num_heads: int = 16, deform_ratio: float = 1.0,
                 init_values: float = 0.0, cffn_ratio: float = 0.25, with_cffn: bool = True,
                 add_vit_feature: bool = True, use_extra_extractor: bool = True, use_final_norm: bool = True,
                 drop_path_rate: float = 0.0, use_cls_token: bool = False, **vit_kwargs) -> None:
        for key in ('out_indices', 'with_fpn'):
            if key in vit_kwargs:
                raise ValueError(f'InternViTAdapter: {key} does not apply (the adapter returns its own four maps)')
        super().__init__(arch, drop_path_rate=drop_path_rate, use_cls_token=use_cls_token, **vit_kwargs)
        if self.vit.patch_size != VIT_STRIDE:
            raise ValueError(f'InternViTAdapter: the ViT patch must be {VIT_STRIDE}, got {self.vit.patch_size} '
                             f"(use a -p16 preset, e.g. arch='internvit-6b-224px-p16'; 14-pixel kernels are "
                             f"resized on load)")
        self.interaction_indexes = self._check_interactions(interaction_indexes, self.vit.num_layers)
        self.add_vit_feature = add_vit_feature
        dim = self.vit.embed_dims
        self.level_embed = nn.Parameter(torch.zeros(len(LEVEL_STRIDES), dim))
        self.spm = SpatialPriorModule(conv_inplane, dim)
        self.injectors = nn.ModuleList(
            Injector(dim, deform_num_heads, n_points, deform_ratio, init_values) for _ in self.interaction_indexes)
        num_extractors = [1] * len(self.interaction_indexes)
        if use_extra_extractor:
            num_extractors[-1] += 2
        self.extractors = nn.ModuleList(
            nn.ModuleList(Extractor(dim, deform_num_heads, n_points, deform_ratio, with_cffn, cffn_ratio,
                                    drop_path_rate) for _ in range(n))
            for n in num_extractors)
        self.up = nn.ConvTranspose2d(dim, dim, 2, 2)
        self.norms = nn.ModuleList(LayerNorm2d(dim, eps=1e-6) if use_final_norm else nn.Identity() for _ in range(4))
        self._reset_adapter_parameters()

    @staticmethod
    def _check_interactions(indexes: Sequence[Sequence[int]], num_layers: int) -> tuple[tuple[int, int], ...]:
        """``[first, last]`` ranges, consecutive from block 0 to the last block."""
        ranges = tuple(tuple(int(i) for i in r) for r in indexes)
        expected_first = 0
        for r in ranges:
            if len(r) != 2 or r[0] != expected_first or r[1] < r[0]:
                break
            expected_first = r[1] + 1
        else:
            if expected_first == num_layers:
                return ranges
        raise ValueError(f'InternViTAdapter: interaction_indexes={[list(r) for r in ranges]} must be '
                         f'consecutive [first, last] block ranges covering all {num_layers} blocks '
                         f'(e.g. [[0, 11], [12, 23], [24, 35], [36, 47]] for 48 blocks)')

    def _reset_adapter_parameters(self) -> None:
        """As the original: trunc-normal linear layers, fan-out normal convs, unit norms; mmcv's own
        initialisation of the deformable attention is kept."""
        nn.init.normal_(self.level_embed)
        deformable = {id(m) for attn in self.modules() if isinstance(attn, MultiScaleDeformableAttention)
                      for m in attn.modules()}
        for name, m in self.named_modules():
            if name.startswith('vit') or id(m) in deformable:
                continue
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0, math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @property
    def size_divisor(self) -> int:
        return LEVEL_STRIDES[-1]

    def _maybe_checkpoint(self, fn: Callable[..., torch.Tensor], *args: Any) -> torch.Tensor:
        """``fn(*args)``, recomputed in the backward pass under ``with_cp`` whenever gradients flow
        through it (as the ViT's blocks are)."""
        grads = any(isinstance(a, torch.Tensor) and a.requires_grad for a in args)
        if self.vit.with_cp and torch.is_grad_enabled() and grads:
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        H, W = inputs.shape[-2:]
        if H % 32 or W % 32:
            raise ValueError(f'InternViTAdapter takes images whose sides are multiples of 32, got {H}x{W} '
                             f'(pad them: pad_size_divisor=32 in the data preprocessor)')
        adapter_dtype = self.level_embed.dtype
        vit_dtype, autocast = self.vit_precision(inputs.device)
        level_shapes = [(H // s, W // s) for s in LEVEL_STRIDES]
        c1, c = self.spm(inputs.to(adapter_dtype))
        c = c + torch.cat([e.expand(h * w, -1) for e, (h, w) in zip(self.level_embed, level_shapes)])
        with autocast:
            x, grid = self.vit.embed(inputs.to(vit_dtype))
        prefix = self.vit.num_prefix_tokens
        inject_points = reference_points([grid], inputs.device)
        extract_points = reference_points(level_shapes, inputs.device)
        for injector, extractors, (first, last) in zip(self.injectors, self.extractors, self.interaction_indexes):
            tokens = self._maybe_checkpoint(injector, x[:, prefix:].to(adapter_dtype), c, inject_points, level_shapes)
            x = torch.cat([x[:, :prefix], tokens.to(x.dtype)], dim=1)
            with autocast:
                x = self.vit.run_blocks(x, grid, first, last + 1)
            tokens = x[:, prefix:].to(adapter_dtype)
            for extractor in extractors:
                c = self._maybe_checkpoint(extractor, c, tokens, extract_points, grid, level_shapes)
        return self._pyramid(c1, c, self.vit.to_map(x, grid).to(adapter_dtype), level_shapes)

    def _pyramid(self, c1: torch.Tensor, c: torch.Tensor, vit_map: torch.Tensor,
                 level_shapes: list[tuple[int, int]]) -> tuple[torch.Tensor, ...]:
        B, _, D = c.shape
        c2, c3, c4 = (t.transpose(1, 2).reshape(B, D, h, w)
                      for t, (h, w) in zip(c.split([h * w for h, w in level_shapes], dim=1), level_shapes))
        c1 = self.up(c2) + c1
        maps = [c1, c2, c3, c4]
        if self.add_vit_feature:
            maps = [m + (vit_map if m.shape[-2:] == vit_map.shape[-2:] else
                         F.interpolate(vit_map, size=m.shape[-2:], mode='bilinear', align_corners=False))
                    for m in maps]
        return tuple(norm(m.float()) for norm, m in zip(self.norms, maps))
