"""Simple feature pyramids from same-stride ViT maps (ViTDet, Li et al., "Exploring Plain Vision
Transformer Backbones for Object Detection", ECCV 2022).

``SimpleFPN``, as the InternViT-6B segmentation and detection recipes built it: four maps [B, C, H, W]
at the patch stride s (14 for InternViT; the detection recipe feeds the last block's map four times) ->
up x4 (ConvTranspose2d, LayerNorm + GELU, ConvTranspose2d) at s/4, up x2 (ConvTranspose2d) at s/2,
identity at s, down x2 (max-pool, ceil mode) at 2s, channels kept: strides 3.5 / 7 / 14 / 28 for patch
14. The detection recipe follows it with mmdet's FPN.

``SimpleFeaturePyramid``, ViTDet's own (detectron2's ``SimpleFeaturePyramid``, mmdet's ViTDet
``SimpleFPN``): one map -> the same four re-scalings, but halving the channels at each up-sampling
(C/4 at s/4, C/2 at s/2), then per level a 1x1 conv + LayerNorm and a 3x3 conv + LayerNorm to
``out_channels``, and a fifth level by a stride-2 max-pool of the last (the RPN's stride 64).

``norm``: both take 'LN' (the published models' and ViTDet's channels-first LayerNorm, computed in
fp32) or 'BN' (BatchNorm2d), as detectron2's ``norm`` argument does. Trained from scratch on a short
schedule, the LayerNorms keep the stride-4 level from learning: the CPU detection demo (400
iterations, RoIs pooled from stride 4 at mmdet's default levels) reaches bbox mAP 0.001 with 'LN' and
0.60 with 'BN' (``docs/benchmark_detection_necks.txt``), so the demo uses 'BN'; the recipes, which start
from a pretrained ViT, keep 'LN'.
"""
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .norms import LayerNorm2d

NORMS = ('LN', 'BN')


def norm_layer(norm: str, channels: int) -> nn.Module:
    """'LN': channels-first LayerNorm in fp32, eps 1e-6 (the published necks'); 'BN': BatchNorm2d."""
    if norm == 'LN':
        return LayerNorm2d(channels, eps=1e-6)
    if norm == 'BN':
        return nn.BatchNorm2d(channels)
    raise ValueError(f'simple feature pyramid: norm={norm!r}; expected one of {list(NORMS)}')


class SimpleFPN(nn.Module):
    """Four same-stride maps -> four maps at strides /4, /2, x1, x2 of the input stride; channels kept."""

    scale_factors = (4.0, 2.0, 1.0, 0.5)

    def __init__(self, channels: int, norm: str = 'LN') -> None:
        super().__init__()
        self.up4 = nn.Sequential(
            nn.ConvTranspose2d(channels, channels, 2, 2), norm_layer(norm, channels), nn.GELU(),
            nn.ConvTranspose2d(channels, channels, 2, 2))
        self.up2 = nn.ConvTranspose2d(channels, channels, 2, 2)
        # ceil: an odd grid keeps its last row / column (and a 1-cell map stays 1 cell), as the padded input does
        self.down2 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The published models' initialisation (their ``_init_weights``): transposed convolutions
        normal with std sqrt(2 / fan_out), fan_out = kernel area x output channels, biases zero."""
        for m in self.modules():
            if isinstance(m, nn.ConvTranspose2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, std=(2.0 / fan_out) ** 0.5)
                nn.init.zeros_(m.bias)

    def forward(self, features: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        if len(features) != 4:
            raise ValueError(f'SimpleFPN takes 4 feature maps (4 out_indices), got {len(features)}')
        f1, f2, f3, f4 = features
        return self.up4(f1), self.up2(f2), f3, self.down2(f4)


class SimpleFeaturePyramid(nn.Module):
    """ViTDet's simple feature pyramid: the last of the maps given ([B, C, H, W] at stride s) -> maps of
    ``out_channels`` at strides s / f for f in ``scale_factors`` (4, 2, 1, 0.5), then
    ``num_outs - len(scale_factors)`` more, each a stride-2 max-pool (kernel 1) of the previous."""

    def __init__(self, in_channels: int, out_channels: int = 256, scale_factors: Sequence[float] = (4.0, 2.0, 1.0, 0.5),
                 num_outs: int = 5, norm: str = 'LN') -> None:
        super().__init__()
        if num_outs < len(scale_factors):
            raise ValueError(f'SimpleFeaturePyramid: num_outs={num_outs} < {len(scale_factors)} scale factors')
        self.stages = nn.ModuleList(self._stage(in_channels, out_channels, float(f), norm) for f in scale_factors)
        self.extra_levels = num_outs - len(scale_factors)

    @staticmethod
    def _stage(dim: int, out_channels: int, factor: float, norm: str) -> nn.Sequential:
        if factor == 4.0:
            layers = [nn.ConvTranspose2d(dim, dim // 2, 2, 2), norm_layer(norm, dim // 2), nn.GELU(),
                      nn.ConvTranspose2d(dim // 2, dim // 4, 2, 2)]
            dim //= 4
        elif factor == 2.0:
            layers = [nn.ConvTranspose2d(dim, dim // 2, 2, 2)]
            dim //= 2
        elif factor == 1.0:
            layers = []
        elif factor == 0.5:
            layers = [nn.MaxPool2d(2, 2, ceil_mode=True)]
        else:
            raise ValueError(f'SimpleFeaturePyramid: scale factor {factor} is not one of 4, 2, 1, 0.5')
        return nn.Sequential(*layers, nn.Conv2d(dim, out_channels, 1, bias=False), norm_layer(norm, out_channels),
                             nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
                             norm_layer(norm, out_channels))

    def forward(self, features: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        x = features[-1]
        outs = [stage(x) for stage in self.stages]
        for _ in range(self.extra_levels):
            outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return tuple(outs)
