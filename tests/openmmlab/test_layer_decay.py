"""LayerDecayOptimWrapperConstructor: every parameter's lr and weight decay, for any depth."""
import re

import pytest
import torch
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS

import mmseg_custom  # noqa: F401
from mmseg.registry import MODELS

BASE_LR, WD = 1.0, 0.05


def build_optim(model, decay):
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type='LayerDecayOptimWrapperConstructor',
        optim_wrapper_cfg=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=BASE_LR, weight_decay=WD)),
        paramwise_cfg=dict(layer_decay_rate=decay)))
    return constructor(model)


def expected(name: str, param: torch.Tensor, depth: int, decay: float) -> tuple[float, float]:
    """lr and weight decay of a parameter, from the recipe: decay^(L+1-id)."""
    block = re.search(r'\.blocks\.(\d+)\.', name)
    if block:
        lid = int(block.group(1)) + 1
    elif any(k in name for k in ('cls_token', 'pos_embed', 'patch_embed')):
        lid = 0
    else:
        lid = depth + 1
    no_wd = param.ndim == 1 or name.endswith(('cls_token', 'pos_embed'))
    return BASE_LR * decay ** (depth + 1 - lid), 0.0 if no_wd else WD


def segmentor(arch, out_indices, frozen=False, device='cpu'):
    width = 64 if isinstance(arch, str) and 'tiny' in arch else 3200
    with torch.device(device):
        return MODELS.build(dict(
            type='EncoderDecoder',
            backbone=dict(type='InternViT', arch=arch, out_indices=out_indices, with_fpn=len(out_indices) == 4,
                          frozen=frozen),
            decode_head=dict(type='LinearProbeHead', in_channels=width, in_index=len(out_indices) - 1,
                             num_classes=5, norm_cfg=dict(type='BN'))))


def check_groups(model, depth, decay):
    optim = build_optim(model, decay).optimizer
    where = {id(p): g for g in optim.param_groups for p in g['params']}
    seen = 0
    for name, param in model.named_parameters():
        if not param.requires_grad:
            assert id(param) not in where, f'{name} requires no grad but is in the optimizer'
            continue
        lr, wd = expected(name, param, depth, decay)
        group = where[id(param)]
        assert group['lr'] == pytest.approx(lr), name
        assert group['weight_decay'] == wd, name
        seen += 1
    assert seen == sum(len(g['params']) for g in optim.param_groups)
    return optim


def test_three_block_model():
    model = segmentor('internvit-tiny-rms', [2])
    optim = check_groups(model, depth=3, decay=0.9)
    lrs = sorted({g['lr'] for g in optim.param_groups})
    assert lrs == pytest.approx([0.9 ** 4, 0.9 ** 3, 0.9 ** 2, 0.9, 1.0])
    where = {id(p): g for g in optim.param_groups for p in g['params']}
    params = dict(model.named_parameters())
    for no_decay in ('backbone.vit.pos_embed', 'backbone.vit.blocks.0.ls1.gamma',
                     'backbone.vit.blocks.0.attn.q_norm.weight',
                     'backbone.vit.blocks.0.mlp.fc1.bias'):
        assert where[id(params[no_decay])]['weight_decay'] == 0.0
    assert where[id(params['backbone.vit.blocks.0.attn.qkv.weight'])]['weight_decay'] == WD


def test_45_block_model_on_meta():
    model = segmentor('internvit-6b-448px', [11, 22, 33, 44], device='meta')
    check_groups(model, depth=45, decay=0.95)


def test_frozen_backbone_is_left_out_and_fpn_is_trained():
    model = segmentor('internvit-tiny-ln', [0, 1, 2, 2], frozen=True)
    optim = check_groups(model, depth=3, decay=0.95)
    names = {id(p): n for n, p in model.named_parameters()}
    in_optim = {names[id(p)] for g in optim.param_groups for p in g['params']}
    assert not any(n.startswith('backbone.vit.') for n in in_optim)
    assert any(n.startswith('backbone.fpn.') for n in in_optim)


def test_unknown_paramwise_key():
    with pytest.raises(ValueError, match=r"unknown paramwise_cfg keys \['decay_mult'\]"):
        OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
            type='LayerDecayOptimWrapperConstructor',
            optim_wrapper_cfg=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1.0)),
            paramwise_cfg=dict(decay_mult=0.9)))(segmentor('internvit-tiny-rms', [2]))
