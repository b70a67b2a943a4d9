"""Layer-wise learning-rate decay as an mmengine optimizer-wrapper constructor, shared by the
segmentation and detection layers; the rule itself is ``internvl.models.layer_decay``."""
from typing import Optional

from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch import nn

from internvl.models.layer_decay import count_blocks, layer_decay_param_groups


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
