"""The norms of InternViT and its dense heads, all computing in fp32 and returning the input dtype
(which keeps a bf16 backbone numerically close to the fp32 one).

RMSNorm reduces with a fused vector norm (no full-size temporaries), has its own autograd function,
and where autograd records nothing (inference, a frozen backbone) applies its weight in place.
"""
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .linear import recorded


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
        if recorded(x, self.weight):
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
