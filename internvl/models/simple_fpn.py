"""Simple feature pyramid from four same-stride ViT maps (ViTDet, Li et al. ECCV 2022; as used by the
InternViT-6B segmentation recipes).

Inputs: four maps [B, C, H, W] at the patch stride s (14 for InternViT). Outputs, in order:
up x4 (ConvTranspose2d, LayerNorm + GELU, ConvTranspose2d) at s/4, up x2 (ConvTranspose2d) at s/2,
identity at s, down x2 (max-pool, ceil mode) at 2s: strides 3.5 / 7 / 14 / 28 for patch 14.
"""
import torch
from torch import nn

from .layers import LayerNorm2d


class SimpleFPN(nn.Module):
    """Four same-stride maps -> four maps at strides /4, /2, x1, x2 of the input stride; channels kept."""

    scale_factors = (4.0, 2.0, 1.0, 0.5)

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.up4 = nn.Sequential(
            nn.ConvTranspose2d(channels, channels, 2, 2), LayerNorm2d(channels, eps=1e-6), nn.GELU(),
            nn.ConvTranspose2d(channels, channels, 2, 2))
        self.up2 = nn.ConvTranspose2d(channels, channels, 2, 2)
        # ceil: an odd grid keeps its last row / column (and a 1-cell map stays 1 cell), as the padded input does
        self.down2 = nn.MaxPool2d(2, 2, ceil_mode=True)

    def forward(self, features: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        if len(features) != 4:
            raise ValueError(f'SimpleFPN takes 4 feature maps (4 out_indices), got {len(features)}')
        f1, f2, f3, f4 = features
        return self.up4(f1), self.up2(f2), f3, self.down2(f4)
