"""``InternViTBackbone``: the core InternViT behind the OpenMMLab backbone contract, registered as
``InternViT`` once, in mmengine's root ``MODELS`` registry, which mmseg's and mmdet's registries search.

Contract: images [B, 3, H, W] of any size (padded to the patch inside the core model) -> a tuple
with, for each entry of ``out_indices``, the output of that block as a map [B, C, ceil(H/p), ceil(W/p)].
``with_fpn``: the simple FPN re-scales them to strides p/4, p/2, p, 2p (ViTDet) - from four taps one
map each, or from ONE tap all four (the detection recipe: strides 4, 8, 16, 32 for patch 16); channels
stay ``embed_dims``; ``fpn_norm`` is its norm ('LN', as published, or 'BN': see
``internvl.models.simple_fpn``). ``pretrained`` (any format ``internvl.checkpoint`` reads) is loaded by
``init_weights()``, which mmengine's runner calls.

``frozen``: the ViT stays in eval mode (re-applied by ``train()``), requires no gradient and so is
left out of the optimizer; the FPN stays trainable.

``backbone_dtype='bfloat16'``: the ViT computes in bf16 while the FPN and heads run in fp32, as the
published recipes did. A frozen ViT is stored in bf16 (the cast is applied after the weights are
loaded, by ``init_weights`` or any ``load_state_dict``, never at build); a trained one keeps fp32
weights and runs under autocast.

Precision (the design: ``internvl_mmlab.precision``): the strategy or optimizer wrapper decides the
dtype of the FPN and heads (fp32, or fp16 / bf16 when DeepSpeed casts the whole model); the backbone
follows what consumes its features: ``cast_to_consumer`` gives the FPN its own dtype here, and the
heads and necks theirs in the segmentor and the detector.
"""
from contextlib import nullcontext
from typing import ContextManager, Optional, Sequence, Union

import torch
from mmengine.model import BaseModule

from internvl.models import InternViT, SimpleFPN

from ..precision import DTYPES, cast_to_consumer


class InternViTBackbone(BaseModule):
    """Args of ``internvl.models.InternViT`` (``window_size``, ``global_attn_indexes`` and
    ``use_cls_token``, ``img_size`` included) plus ``with_fpn``, ``fpn_norm``, ``frozen`` and ``backbone_dtype``;
    ``init_cfg`` is not accepted beside ``pretrained``."""

    def __init__(self, arch: Union[str, dict] = 'internvit-6b-224px', drop_path_rate: float = 0.0,
                 with_cp: bool = False, out_indices: Sequence[int] = (-1,), pretrained: Optional[str] = None,
                 with_fpn: bool = False, fpn_norm: str = 'LN', frozen: bool = False, backbone_dtype: str = 'float32',
                 window_size: int = 0, global_attn_indexes: Sequence[int] = (), use_cls_token: bool = True,
                 img_size: Optional[int] = None, init_cfg: Optional[dict] = None) -> None:
        if pretrained and init_cfg:
            raise ValueError('InternViT: give either pretrained=PATH or init_cfg, not both')
        if backbone_dtype not in DTYPES:
            raise ValueError(f'InternViT: backbone_dtype={backbone_dtype!r}; expected one of {list(DTYPES)}')
        if with_fpn and len(out_indices) not in (1, 4):
            raise ValueError(f'InternViT: with_fpn=True needs 1 out index (all four scales from it) or 4 '
                             f'(one scale each), got {list(out_indices)}')
        super().__init__(init_cfg)
        self.vit = InternViT(arch, drop_path_rate=drop_path_rate, with_cp=with_cp, out_indices=list(out_indices),
                             pretrained=pretrained, window_size=window_size,
                             global_attn_indexes=global_attn_indexes, use_cls_token=use_cls_token,
                             img_size=img_size)
        self.fpn = SimpleFPN(self.vit.embed_dims, norm=fpn_norm) if with_fpn else None
        self.frozen = frozen
        self.backbone_dtype = DTYPES[backbone_dtype]
        if frozen:
            self.vit.requires_grad_(False)
            self.vit.eval()
        self.register_load_state_dict_post_hook(lambda module, keys: module.apply_backbone_dtype())

    def apply_backbone_dtype(self) -> None:
        """Store a frozen ViT in ``backbone_dtype`` (after its weights are loaded; a no-op otherwise)."""
        if self.frozen:
            self.vit.to(self.backbone_dtype)

    def init_weights(self) -> None:
        if self.init_cfg:
            super().init_weights()
        else:
            self.vit.init_weights()
            self._is_init = True
        self.apply_backbone_dtype()

    def train(self, mode: bool = True) -> 'InternViTBackbone':
        super().train(mode)
        if self.frozen:
            self.vit.eval()
        return self

    def vit_precision(self, device: torch.device) -> tuple[torch.dtype, ContextManager]:
        """The dtype the ViT's inputs take (its weights') and the autocast it runs under: fp32 weights
        computing in ``backbone_dtype`` autocast; weights already in a low precision compute in it."""
        weight_dtype = self.vit.pos_embed.dtype
        mixed = self.backbone_dtype != torch.float32 and weight_dtype == torch.float32
        return weight_dtype, torch.autocast(device.type, dtype=self.backbone_dtype) if mixed else nullcontext()

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        weight_dtype, autocast = self.vit_precision(inputs.device)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen), autocast:
            features = self.vit(inputs.to(weight_dtype))
        if self.fpn is None:
            return features
        if len(features) == 1:  # ViTDet: all four scales from the one tapped block
            features = features * 4
        return self.fpn(cast_to_consumer(features, self.fpn))

    @property
    def out_indices(self) -> list[int]:
        """The tapped blocks, 0-based and non-negative, in the order of the returned maps."""
        return list(self.vit.out_indices)

    @property
    def size_divisor(self) -> int:
        """Input sides that are multiples of this need no padding inside the backbone (the ViT patch)."""
        return self.vit.patch_size
