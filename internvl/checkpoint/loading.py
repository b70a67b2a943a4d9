"""Loading any InternViT checkpoint into an ``InternViT`` (any module with its ``arch`` and state-dict
layout: this package never imports the models, which import it).

Loading is strict by default: every missing and unexpected key is named, a shape mismatch or an
architecture that contradicts the checkpoint's config.json fails with a message naming the file.
Two differences are adapted rather than refused, and logged: a position embedding of another grid
(bicubic resampling to the model's pretrained grid) and a patch kernel of another size (14 -> 16,
pseudo-inverse resize).
"""
import json
import logging
import os
from typing import Any, Optional

import torch
from torch import nn

from ..arch import ARCH_PRESETS, resolve_arch
from ..pos_embed import fit_pos_embed, resample_patch_embed
from .formats import ARCH_READERS, VIT_OPTIONS, CanonicalCheckpoint, arch_from_config, infer_arch, to_canonical
from .io import CheckpointError, read_config, read_weights

logger = logging.getLogger(__name__)

# Arch fields that must agree between a model and the checkpoint it loads; the others (patch and
# image size) are adapted, and layer_scale_init only matters for random initialisation.
STRUCTURAL_KEYS = ('embed_dims', 'num_layers', 'num_heads', 'mlp_ratio', 'norm_type', 'qk_norm', 'qkv_bias')


def read_canonical(path: str | os.PathLike, trust_pickled_code: bool = False
                   ) -> tuple[CanonicalCheckpoint, Optional[dict[str, Any]]]:
    """Read ``path`` in any supported format -> (canonical checkpoint, arch if the files state it).
    Pickled files are never unpickled beyond tensors unless ``trust_pickled_code`` (see ``load_torch_file``)."""
    obj, metadata, files = read_weights(path, trust_pickled_code)
    source = str(path)
    ckpt = to_canonical(obj, metadata, source)
    logger.info('%s: %s (%d files, %d tensors)', path, ckpt.format.describe(), len(files), len(ckpt.state_dict))
    if ckpt.ignored:
        roots = sorted({k.split('.', 1)[0] for k in ckpt.ignored})
        logger.info('%s: set aside %d entries outside the vision tower (%s)', path, len(ckpt.ignored),
                    ', '.join(roots[:8]) + (', ...' if len(roots) > 8 else ''))
    if 'arch' in metadata:
        ckpt.options = json.loads(metadata.get('vit_options', '{}'))
        return ckpt, json.loads(metadata['arch'])
    config = read_config(path)
    if config is not None:
        return ckpt, arch_from_config(config, source)
    for reader in ARCH_READERS:  # a layer above's own checkpoints (the run's config of an mmengine checkpoint)
        backbone = reader(obj, metadata)
        if backbone is not None and backbone.get('arch') is not None:
            ckpt.options = {k: backbone[k] for k in VIT_OPTIONS if k in backbone}
            logger.info('%s: arch and %s from the config of the run that saved it (model.backbone)', path,
                        ', '.join(ckpt.options) or 'no other options')
            return ckpt, resolve_arch(backbone['arch'])
    return ckpt, None


def read_checkpoint_arch(path: str | os.PathLike) -> dict[str, Any]:
    """The architecture of a checkpoint: from our metadata, its config.json, or inferred from shapes."""
    ckpt, arch = read_canonical(path)
    return arch if arch is not None else infer_arch(ckpt.state_dict, ARCH_PRESETS, str(path))


def check_arch(model_arch: dict, ckpt_arch: Optional[dict], source: str) -> None:
    if ckpt_arch is None:
        return
    ckpt_arch = resolve_arch(ckpt_arch)
    diffs = [f'{k}: checkpoint {ckpt_arch[k]!r}, model {model_arch[k]!r}'
             for k in STRUCTURAL_KEYS if ckpt_arch[k] != model_arch[k]]
    if diffs:
        raise CheckpointError(f'{source}: the checkpoint describes another architecture than the model '
                              f'({"; ".join(diffs)}); choose the matching arch preset')


def _adapt_to_model(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Resample the position embedding and the patch kernel in place when their sizes differ; drop the
    cls token and its position entry (the first) for a model built with ``use_cls_token=False``."""
    pos = state_dict.get('pos_embed')
    if model.num_prefix_tokens == 0 and 'cls_token' in state_dict:
        del state_dict['cls_token']
        if pos is not None:
            pos = state_dict['pos_embed'] = pos[:, 1:]
        logger.info('%s: cls token and its position entry discarded (the model has no cls token)', source)
    if pos is not None and pos.shape != model.pos_embed.shape and pos.shape[-1] == model.pos_embed.shape[-1]:
        try:
            state_dict['pos_embed'], src_grid = fit_pos_embed(pos, model.pretrain_grid, model.num_prefix_tokens,
                                                              source)
        except ValueError as e:
            raise CheckpointError(str(e)) from None
        logger.info('%s: position embedding resampled from a %dx%d grid to %dx%d', source, *src_grid,
                    *model.pretrain_grid)
    kernel = state_dict.get('patch_embed.proj.weight')
    target = model.patch_embed.proj.weight
    if kernel is not None and kernel.shape[:2] == target.shape[:2] and kernel.shape[2:] != target.shape[2:]:
        state_dict['patch_embed.proj.weight'] = resample_patch_embed(kernel, tuple(target.shape[2:]))
        logger.info('%s: patch kernel resized from %s to %s', source, tuple(kernel.shape[2:]),
                    tuple(target.shape[2:]))


def load_pretrained(model: nn.Module, path: str | os.PathLike, strict: bool = True) -> tuple[list, list]:
    """Load a checkpoint in any supported format into ``model`` (an ``InternViT``).

    Returns (missing keys, unexpected keys). With ``strict`` any of either is an error that names
    them all; otherwise they are logged by name.
    """
    ckpt, ckpt_arch = read_canonical(path)
    return load_canonical(model, ckpt, ckpt_arch, str(path), strict)


def load_canonical(model: nn.Module, ckpt: CanonicalCheckpoint, ckpt_arch: Optional[dict], source: str,
                   strict: bool, assign: bool = False) -> tuple[list, list]:
    """Load a checkpoint already read by ``read_canonical`` (``assign``: take the checkpoint's tensors
    instead of copying into the model's, for a model built on the meta device)."""
    check_arch(model.arch, ckpt_arch, source)
    state_dict = dict(ckpt.state_dict)
    _adapt_to_model(model, state_dict, source)
    missing, unexpected = check_state_dict(model.state_dict(), state_dict, f'{source} ({ckpt.format.describe()})',
                                           strict)
    model.load_state_dict({k: v for k, v in state_dict.items() if k not in unexpected}, strict=False, assign=assign)
    logger.info('loaded %s into %s', source, type(model).__name__)
    return missing, unexpected


def check_state_dict(expected: dict[str, Any], state_dict: dict[str, Any], source: str,
                     strict: bool = True) -> tuple[list[str], list[str]]:
    """Compare a checkpoint's ``state_dict`` with a model's (``expected``; tensors or anything with a
    ``shape``) -> (missing keys, unexpected keys). A shape mismatch is always an error; missing or
    unexpected keys are one when ``strict`` (else logged). Every message names ``source`` and the keys."""
    mismatched = [f'{k}: checkpoint {list(v.shape)} vs model {list(expected[k].shape)}'
                  for k, v in state_dict.items() if k in expected and tuple(v.shape) != tuple(expected[k].shape)]
    if mismatched:
        raise CheckpointError(f'{source}: shape mismatch for {len(mismatched)} entries (is the arch right?): '
                              + '; '.join(mismatched[:20]) + (' ...' if len(mismatched) > 20 else ''))
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        message = f'{source}: missing keys {missing}; unexpected keys {unexpected}'
        if strict:
            raise CheckpointError(message)
        logger.warning(message)
    return missing, unexpected
