"""OpenGVLab's released ADE20K segmentors (InternVL ``segmentation/``, mmseg 0.30) read as checkpoints of
our segmentor (``BatchedSlideEncoderDecoder`` + ``InternViTBackbone``), key by key.

What a release is (the original's ``release.py`` writes the ``'module'`` entry of a DeepSpeed checkpoint
with ``torch.save``): a bare state dict - tensors at the top level, no ``state_dict`` / ``meta`` wrapper -
whose backbone is the original ``InternViT6B`` (backbone and FPN bf16, heads fp32):

=======================================================  =============================================
original key                                              ours
=======================================================  =============================================
``backbone.{cls_token, pos_embed, patch_embed, blocks}``  ``backbone.vit.*`` (same names below)
``backbone.up1.{0, 1, 3}`` (ConvT 2x2, LayerNorm, ConvT)   ``backbone.fpn.up4.{0, 1, 3}`` (GELU at 2)
``backbone.up2.0`` (ConvT 2x2)                            ``backbone.fpn.up2``
``decode_head.norm.*`` + ``conv_seg.*`` (FCNHead           ``decode_head.bn.*`` + ``conv_seg.*``
with_norm=True, num_convs=0: the linear probe)            (``LinearProbeHead``)
``decode_head.*`` (UPerHead), ``auxiliary_head.*``         the same (mmseg 1.x keeps the names)
=======================================================  =============================================

``up3`` (identity) and ``up4`` (max-pool) hold no weights; the original's ``with_final_norm=True``
LayerNorms (``up1.4``, ``up2.1``, ...) were in no released recipe and are refused by name. ``pos_embed``
is stored at the fine-tuning grid (1 + 36 x 36 for 504 crops); our recipes hold it there too
(``img_size=504``), and a release of another grid is resampled on load (``InternViT``). A release
without its frozen backbone weights maps the rest; the tools then take the ViT from
``model.backbone.pretrained``. The strict check against the config's model happens where it is loaded
(``internvl_mmlab.cli.verify_checkpoint``): every key of the release is placed or named there.
"""
import json
import logging
import re
from collections.abc import Mapping
from typing import Any, Optional

import torch
from mmengine.logging import print_log

from internvl.checkpoint import CheckpointError

VIT_ROOTS = ('cls_token', 'pos_embed', 'patch_embed', 'blocks')
FPN_LAYERS = {'up1.0': 'fpn.up4.0', 'up1.1': 'fpn.up4.1', 'up1.3': 'fpn.up4.3', 'up2.0': 'fpn.up2'}
LINEAR_PROBE_PARTS = ('decode_head.norm.', 'decode_head.conv_seg.')


def is_original_release(obj: Any) -> bool:
    """A bare state dict (the weights at the top level, no ``state_dict`` / ``meta`` wrapper) of an mmseg
    segmentor whose backbone keys, if any, are not ours: the original's release layout."""
    return (isinstance(obj, Mapping) and isinstance(obj.get('decode_head.conv_seg.weight'), torch.Tensor)
            and 'state_dict' not in obj and 'meta' not in obj
            and not any(str(k).startswith(('backbone.vit.', 'backbone.fpn.')) for k in obj))


def _backbone_key(key: str, source: str) -> str:
    rest = key[len('backbone.'):]
    if rest.split('.', 1)[0] in VIT_ROOTS:
        return 'backbone.vit.' + rest
    layer = re.match(r'(up[1-4]\.\d+)\.(.+)$', rest)
    if layer is None:
        return key  # not the original InternViT6B's: left for the strict check to name
    if layer.group(1) not in FPN_LAYERS:
        raise CheckpointError(f'{source}: {key}: a simple-FPN layer of the original with_final_norm=True, which no '
                              f'released recipe used and this toolkit does not build (its FPN holds up1.0, up1.1, '
                              f'up1.3 and up2.0)')
    return f'backbone.{FPN_LAYERS[layer.group(1)]}.{layer.group(2)}'


def map_original_release(state_dict: Mapping[str, torch.Tensor], source: str) -> tuple[dict, str]:
    """The release's state dict in our segmentor's key layout, and a description of the layout found."""
    mapped = {(_backbone_key(k, source) if k.startswith('backbone.') else k): v for k, v in state_dict.items()}
    head = [k for k in mapped if k.startswith('decode_head.')]
    linear = (all(k.startswith(LINEAR_PROBE_PARTS) for k in head)
              and any(k.startswith('decode_head.norm.') for k in head))
    if linear:
        mapped = {re.sub(r'^decode_head\.norm\.', 'decode_head.bn.', k): v for k, v in mapped.items()}
    vit = [k for k in mapped if k.startswith('backbone.vit.')]
    blocks = {int(m.group(1)) for k in vit if (m := re.match(r'backbone\.vit\.blocks\.(\d+)\.', k))}
    if vit:
        pos = state_dict.get('backbone.pos_embed')
        grid = f', pos_embed of {pos.shape[1]} entries' if pos is not None else ''
        backbone = f'InternViT ({len(blocks)} blocks{grid}, {state_dict["backbone.patch_embed.proj.weight"].dtype})'
    else:
        backbone = 'no backbone ViT weights (frozen, left out of the release)'
    fpn = ' + simple FPN (up1 -> fpn.up4, up2 -> fpn.up2)' if any('.fpn.' in k for k in mapped) else ''
    heads = ('linear probe (FCNHead with_norm, norm -> bn)' if linear else
             'UPerHead' if any(k.startswith('decode_head.psp_modules.') for k in head) else 'decode head')
    if any(k.startswith('auxiliary_head.') for k in mapped):
        heads += ' + auxiliary FCN head'
    return mapped, f"OpenGVLab's released segmentor (mmseg 0.x, a bare state dict): {backbone}{fpn}; {heads}"


def dataset_meta_for(num_classes: int) -> Optional[dict]:
    """The classes and palette of the dataset the original released for ``num_classes`` classes."""
    from mmseg.datasets import ADE20KDataset, COCOStuffDataset
    for dataset in (ADE20KDataset, COCOStuffDataset):
        if len(dataset.METAINFO['classes']) == num_classes:
            return {k: list(v) for k, v in dataset.METAINFO.items()}
    return None


def adapt_original_release(obj: Any, filename: str) -> Optional[dict]:
    """``internvl_mmlab``'s checkpoint adapter: an original release -> ``{'state_dict', 'meta'}`` (meta:
    the dataset's classes and palette, the layout found); None for anything else."""
    if not is_original_release(obj):
        return None
    others = sorted(str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor))
    if others:  # only reachable with trust_pickled_code: what was unpickled is no weight
        print_log(f'{filename}: set aside {len(others)} entries that are no tensors: {others[:10]}', logger='current',
                  level=logging.WARNING)
        obj = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    state_dict, layout = map_original_release(obj, filename)
    print_log(f'{filename}: {layout}', logger='current')
    meta = {'released_layout': layout}
    dataset_meta = dataset_meta_for(obj['decode_head.conv_seg.weight'].shape[0])
    if dataset_meta is not None:
        meta['dataset_meta'] = dataset_meta
    return {'state_dict': state_dict, 'meta': meta}


def convert_original_release(src: str, dst: str, trust_pickled_code: bool = False) -> bool:
    """Write the original release ``src`` as an mmseg 1.x checkpoint ``dst`` (``.pth``: ``{'state_dict',
    'meta'}``, which ``mmseg.apis.init_model`` and ``MMSegInferencer`` load with our configs;
    ``.safetensors``: the same, the meta as JSON), atomically. False (nothing written) when ``src`` is not
    an original release."""
    from internvl.checkpoint import load_torch_file, save_safetensors_atomic, write_atomic
    obj = load_torch_file(src, mmap=True, trust_pickled_code=trust_pickled_code)
    adapted = adapt_original_release(obj, src)
    if adapted is None:
        return False
    if dst.endswith('.safetensors'):
        save_safetensors_atomic(adapted['state_dict'], dst, metadata={'meta': json.dumps(adapted['meta'])})
    elif dst.endswith('.pth'):
        write_atomic(dst, lambda tmp: torch.save(adapted, tmp))
    else:
        raise ValueError(f'{dst}: a released segmentor converts to a .pth or .safetensors file')
    print_log(f'wrote {dst}: {len(adapted["state_dict"])} tensors in our segmentor\'s layout', logger='current')
    return True
