"""Layer-wise learning-rate decay (BEiT, Bao et al. ICLR 2022) for ViT backbones, as an mmengine
optimizer-wrapper constructor shared by the segmentation and detection layers.

Layer ids: 0 for the cls token, position and patch embeddings; i + 1 for block i; L + 1 for
everything else (FPN, necks, heads), where L is the number of blocks (48, 45, 24, ... found in the
model, or ``paramwise_cfg.num_layers``). A parameter's lr is ``base_lr * decay ** (L + 1 - id)``.
No weight decay for the position embedding, cls token, norms, biases and layer scales (every
1-D parameter). Parameters that require no gradient (a frozen backbone) are left out.
"""
import re
from typing import Optional

from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch import nn

BLOCK = re.compile(r'(?:^|\.)blocks\.(\d+)\.')
EMBEDDINGS = ('cls_token', 'pos_embed', 'patch_embed')
NO_DECAY_NAMES = ('cls_token', 'pos_embed')


def count_blocks(model: nn.Module) -> int:
    ids = [int(m.group(1)) for name, _ in model.named_parameters() if (m := BLOCK.search(name))]
    if not ids:
        raise ValueError('LayerDecayOptimWrapperConstructor: the model has no parameters named '
                         '"blocks.<i>.*", so its depth is unknown; set paramwise_cfg.num_layers')
    return max(ids) + 1


def layer_id(name: str, num_layers: int) -> int:
    match = BLOCK.search(name)
    if match:
        return int(match.group(1)) + 1
    if any(part in name.split('.') for part in EMBEDDINGS):
        return 0
    return num_layers + 1


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
        groups: dict[tuple[int, bool], dict] = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            lid = layer_id(name, num_layers)
            no_decay = param.ndim == 1 or any(part in name.split('.') for part in NO_DECAY_NAMES)
            scale = decay ** (num_layers + 1 - lid)
            group = groups.setdefault((lid, no_decay), {
                'params': [], 'lr': self.base_lr * scale, 'lr_scale': scale, 'layer_id': lid,
                'weight_decay': 0.0 if no_decay else self.base_wd})
            group['params'].append(param)
        params.extend(groups[key] for key in sorted(groups))
        print_log(f'layer-wise lr decay {decay} over {num_layers} blocks: {len(groups)} parameter groups, '
                  f'lr scales {decay ** (num_layers + 1):.3g} (embeddings) to 1 (heads)', logger='current')
