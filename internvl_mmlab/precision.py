"""The precision design: which module holds and computes in which dtype, per strategy.

Per strategy: parameters / buffers / what the ViT, FPNs, adapter and heads compute in; the box
arithmetic, nms and RoIAlign are fp32 in all of them.

- fp32 (plain Runner; DeepSpeed without fp16 / bf16): fp32, a frozen ViT stored in ``backbone_dtype`` /
  fp32 / fp32, the ViT in ``backbone_dtype``.
- DeepSpeed bf16 (``deepspeed_zero1_bf16.py``, the ``*-bf16`` recipes): bf16 with fp32 master copies in
  the ZeRO optimizer / bf16 (``buffer_dtype``) / bf16.
- DeepSpeed fp16 (``deepspeed_zero1_fp16.py``: the COCO and adapter recipes): fp16 with fp32 master
  copies and a dynamic loss scale / fp16 (``buffer_dtype``) / fp16.
- AMP (``tools/train.py --amp``, ``AmpOptimWrapper``; fp16 for detection and bf16 for segmentation on
  GPUs, bf16 on the CPU): fp32 / fp32 / autocast.

DeepSpeed's fp16 / bf16 cast every parameter, and its buffers only with ``data_types.buffer_dtype``:
both strategies set it, so a norm never meets weights and statistics of two dtypes. ``inputs_to_half``
casts the images. The heads keep what must not be half precision out of it:

- **Boxes are fp32.** ``FP32BoxRPNHead`` casts the RPN's scores and deltas to fp32 before anchors,
  decoding, assignment, nms and the losses (in fp16, box areas above 256 x 256 px overflow to inf in
  ``MaxIoUAssigner``, and mmcv's ``nms`` takes float only, on the CPU and CUDA alike);
  ``FP32RoIExtractor`` pools in fp32 (mmcv's CPU ``RoIAlign`` takes fp32 only, its CUDA twin fp32 and
  fp16, and a box in fp16 is quantised to 1 px beyond 1024 px) and hands the pooled features back in
  the head's dtype; ``FP32BoxRoIHead`` casts the box and mask heads' outputs to fp32 before decoding and
  the losses. This is what mmdet 2's ``force_fp32`` did for the original recipes.
- **Deformable attention** (the ViT-Adapter) reaches mmcv's CUDA op in fp32 or fp16, the dtypes it
  dispatches; in bf16 it runs on fp32 copies of its inputs and weights (``deform_attn_dtype``). Its CPU
  path (``multi_scale_deformable_attn_pytorch``) takes any dtype.
- **Norms** that the original computed in fp32 (the adapter's channels-first LayerNorms, InternViT's
  RMSNorm and qk-norm) compute in fp32 and cast back.
- Features reach each consumer in the dtype of its weights (``cast_to_consumer``): a frozen ViT stored
  in fp16 feeds fp32 heads, the adapter's fp32 outputs feed fp16 heads.
"""
from typing import Any, Sequence

import torch
from torch import nn

DTYPES = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}
# The dtypes mmcv's CUDA deformable-attention kernel dispatches (its CPU path takes any).
CUDA_DEFORM_ATTN_DTYPES = (torch.float32, torch.float16)


def deform_attn_dtype(dtype: torch.dtype, device: torch.device) -> torch.dtype:
    """The dtype deformable attention computes in for inputs of ``dtype``: itself where mmcv's kernel
    for ``device`` takes it, else fp32 (bf16 on CUDA)."""
    if torch.device(device).type == 'cuda' and dtype not in CUDA_DEFORM_ATTN_DTYPES:
        return torch.float32
    return dtype


def to_fp32(value: Any) -> Any:
    """``value`` with every floating-point tensor in it (nested in lists / tuples) cast to fp32."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, (list, tuple)):
        return type(value)(to_fp32(v) for v in value)
    return value


def cast_to_consumer(features: Sequence[torch.Tensor], consumer: nn.Module) -> tuple[torch.Tensor, ...]:
    """``features`` cast to the dtype of ``consumer``'s first floating-point parameter (unchanged when it
    has none): features reach each module in the dtype of its own weights, which the strategy or
    optimizer wrapper chose. Under autocast the consumer's ops choose their own precision as usual."""
    dtype = next((p.dtype for p in consumer.parameters() if p.is_floating_point()), None)
    return tuple(features) if dtype is None else tuple(f.to(dtype) for f in features)
