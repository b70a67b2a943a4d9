"""Layer-wise learning-rate decay (BEiT, Bao et al. ICLR 2022) for models built on InternViT: the
optimizer parameter groups, as a free function (the mmengine constructor and plain-PyTorch scripts
both use it).

Layer ids: 0 for the cls token, position and patch embeddings; i + 1 for block i; L + 1 for
everything else (FPN, necks, heads), where L is the number of blocks (48, 45, 24, ... found in the
model, or given). A parameter's lr is ``base_lr * decay ** (L + 1 - id)``. No weight decay for the
position embedding, cls token, norms, biases and layer scales (every 1-D parameter). Parameters that
require no gradient (a frozen backbone) are left out.
"""
import re
from typing import Optional

from torch import nn

BLOCK = re.compile(r'(?:^|\.)blocks\.(\d+)\.')
EMBEDDINGS = ('cls_token', 'pos_embed', 'patch_embed')
NO_DECAY_NAMES = ('cls_token', 'pos_embed')


def count_blocks(model: nn.Module) -> int:
    ids = [int(m.group(1)) for name, _ in model.named_parameters() if (m := BLOCK.search(name))]
    if not ids:
        raise ValueError('layer-wise lr decay: the model has no parameters named "blocks.<i>.*", so its depth '
                         'is unknown; give num_layers (paramwise_cfg.num_layers in a config)')
    return max(ids) + 1


def layer_id(name: str, num_layers: int) -> int:
    match = BLOCK.search(name)
    if match:
        return int(match.group(1)) + 1
    if any(part in name.split('.') for part in EMBEDDINGS):
        return 0
    return num_layers + 1


def layer_decay_param_groups(model: nn.Module, base_lr: float, weight_decay: float, decay: float,
                             num_layers: Optional[int] = None) -> list[dict]:
    """Parameter groups, one per (layer id, decayed or not), sorted by layer id; each carries ``lr``,
    ``weight_decay``, ``lr_scale`` and ``layer_id``."""
    num_layers = num_layers or count_blocks(model)
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        lid = layer_id(name, num_layers)
        no_decay = param.ndim == 1 or any(part in name.split('.') for part in NO_DECAY_NAMES)
        scale = decay ** (num_layers + 1 - lid)
        group = groups.setdefault((lid, no_decay), {
            'params': [], 'lr': base_lr * scale, 'lr_scale': scale, 'layer_id': lid,
            'weight_decay': 0.0 if no_decay else weight_decay})
        group['params'].append(param)
    return [groups[key] for key in sorted(groups)]
