"""Feature extraction from any InternViT checkpoint (bare, chat or InternVL-C/G folder)."""
import json
import logging
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from safetensors.torch import save_file
from tqdm import tqdm

from ..checkpoint.io import read_config, write_atomic
from ..data import build_transform, open_image
from ..models.intern_vit import InternViT
from ..models.internvl_clip import InternVLModel

logger = logging.getLogger(__name__)
KINDS = ('pooled', 'dense')


@torch.no_grad()
def extract_features(model_path: str | os.PathLike, images: Sequence[Path], kind: str = 'pooled',
                     batch_size: int = 8, device: str = 'cpu', dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """Features of ``images`` (resized to the ViT's pretraining size), batched with a progress bar.

    ``pooled`` [N, D]: the InternVL-C embedding for an InternVL-C/G folder, else the mean of the last
    block's patch tokens. ``dense`` [N, C, h, w]: the last block's patch tokens as a map."""
    if kind not in KINDS:
        raise ValueError(f'kind={kind!r}; expected one of {list(KINDS)}')
    config = read_config(model_path) or {}
    clip = InternVLModel.from_pretrained(model_path, torch_dtype=dtype).to(device) if 'qllama_config' in config \
        else None
    vit = clip.vision_model if clip is not None else InternViT.from_pretrained(str(model_path)).to(device, dtype).eval()
    transform = build_transform(vit.arch['img_size'])
    out = []
    for start in tqdm(range(0, len(images), batch_size), desc=f'{kind} features', unit='batch'):
        batch = torch.stack([transform(open_image(p)) for p in images[start:start + batch_size]])
        batch = batch.to(device, vit.pos_embed.dtype)
        if kind == 'pooled' and clip is not None:
            out.append(clip.encode_image(batch, 'InternVL-C').float().cpu())
            continue
        x, grid = vit.embed(batch)
        fmap = vit.to_map(vit.run_blocks(x, grid, 0, vit.num_layers), grid).float().cpu()
        out.append(fmap.mean(dim=(2, 3)) if kind == 'pooled' else fmap)
    return torch.cat(out)


def _write_npy(path: str, array: np.ndarray) -> None:
    with open(path, 'wb') as f:  # a file object: np.save would add '.npy' to the temporary name
        np.save(f, array)


def save_features(features: torch.Tensor, names: Sequence[str], out: str | os.PathLike) -> None:
    """Write ``features`` atomically: ``.npy`` (with the image names in ``<out>.names.txt``) or
    ``.safetensors`` (tensor ``features``, names in the metadata)."""
    out = Path(out)
    if out.suffix == '.npy':
        write_atomic(out, lambda tmp: _write_npy(tmp, features.numpy()))
        write_atomic(out.with_name(out.name + '.names.txt'), lambda tmp: Path(tmp).write_text('\n'.join(names) + '\n'))
    elif out.suffix == '.safetensors':
        write_atomic(out, lambda tmp: save_file({'features': features.contiguous()}, tmp,
                                                metadata={'images': json.dumps(list(names))}))
    else:
        raise ValueError(f'{out}: expected a .npy or .safetensors output file')
    logger.info('wrote %s: features %s for %d images', out, tuple(features.shape), len(names))
