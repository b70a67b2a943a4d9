"""Optimization shared by the segmentation and detection layers: layer-wise learning-rate decay as an
mmengine optimizer-wrapper constructor (the rule itself is ``internvl.models.layer_decay``), and the AMP
wrapper ``tools/train.py --amp`` names."""
from typing import Any, Optional

import torch
from mmengine.logging import print_log
from mmengine.optim import AmpOptimWrapper, DefaultOptimWrapperConstructor, OptimWrapper
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS
from torch import nn

from internvl.models.layer_decay import count_blocks, layer_decay_param_groups

from ..compat import has_accelerator


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """``paramwise_cfg``: ``layer_decay_rate`` (default 1.0 = none), optional ``num_layers``."""

    def add_params(self, params: list[dict], module: nn.Module, prefix: str = '',
                   is_dcn_module: Optional[bool] = None) -> None:
        allowed = {'layer_decay_rate', 'num_layers'}
        unknown = set(self.paramwise_cfg) - allowed
        if unknown:
            raise ValueError(f'LayerDecayOptimWrapperConstructor: unknown paramwise_cfg keys {sorted(unknown)}; '
                             f'allowed: {sorted(allowed)}')
        decay = float(self.paramwise_cfg.get('layer_decay_rate', 1.0))
        num_layers = self.paramwise_cfg.get('num_layers') or count_blocks(module)
        groups = layer_decay_param_groups(module, self.base_lr, self.base_wd, decay, num_layers)
        params.extend(groups)
        print_log(f'layer-wise lr decay {decay} over {num_layers} blocks: {len(groups)} parameter groups, '
                  f'lr scales {decay ** (num_layers + 1):.3g} (embeddings) to 1 (heads)', logger='current')


@OPTIM_WRAPPERS.register_module()
class PortableAmpOptimWrapper(AmpOptimWrapper):
    """mmengine's ``AmpOptimWrapper`` (``tools/train.py --amp``), which also trains on the CPU: there in
    bf16 autocast without loss scaling (bf16 has fp32's range), and fp16 is refused with a clear message
    (mmengine's asserts that a GPU is present)."""

    def __init__(self, loss_scale: Any = 'dynamic', dtype: Any = None, use_fsdp: bool = False, **kwargs: Any) -> None:
        if has_accelerator():
            super().__init__(loss_scale=loss_scale, dtype=dtype, use_fsdp=use_fsdp, **kwargs)
            return
        if dtype not in ('bfloat16', torch.bfloat16):
            raise ValueError(f'AmpOptimWrapper on the CPU needs dtype="bfloat16" (got dtype={dtype!r}); '
                             'fp16 mixed precision needs a GPU')
        OptimWrapper.__init__(self, **kwargs)  # AmpOptimWrapper's own asserts a GPU
        self._scale_update_param = None
        self.loss_scaler = torch.amp.GradScaler('cpu', enabled=False)
        self.cast_dtype = torch.bfloat16
