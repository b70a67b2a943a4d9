"""``InternViT`` in mmseg's registry: the core model behind the mmseg backbone contract.

Contract: images [B, 3, H, W] (H, W multiples of the patch size) -> a tuple with, for each entry of
``out_indices``, the output of that block as a float32 map [B, C, H/p, W/p]. ``pretrained`` (any
format ``internvl.checkpoint`` reads) is loaded by ``init_weights()``, which mmengine's runner calls.
"""
from typing import Optional, Sequence, Union

import torch
from mmengine.model import BaseModule
from mmseg.registry import MODELS

from internvl.models import InternViT


@MODELS.register_module(name='InternViT')
class InternViTBackbone(BaseModule):
    """Args are those of ``internvl.models.InternViT``; ``init_cfg`` is not accepted beside ``pretrained``."""

    def __init__(self, arch: Union[str, dict] = 'internvit-6b-224px', drop_path_rate: float = 0.0,
                 with_cp: bool = False, out_indices: Sequence[int] = (-1,), pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if pretrained and init_cfg:
            raise ValueError('InternViT: give either pretrained=PATH or init_cfg, not both')
        super().__init__(init_cfg)
        self.vit = InternViT(arch, drop_path_rate=drop_path_rate, with_cp=with_cp,
                             out_indices=list(out_indices), pretrained=pretrained)

    def init_weights(self) -> None:
        if self.init_cfg:
            super().init_weights()
        else:
            self.vit.init_weights()
            self._is_init = True

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(feature.float() for feature in self.vit(inputs))
