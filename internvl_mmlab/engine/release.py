"""DeepSpeed checkpoint release, shared by segmentation and detection: an mmengine DeepSpeed
checkpoint (a directory ``iter_N.pth/`` of model states and per-rank optimizer shards, any ZeRO stage,
any number of ranks) -> one ordinary mmengine checkpoint ``{'meta', 'state_dict'}`` in fp32, through
DeepSpeed's own ``zero_to_fp32``, which the plain Runner and ``tools/test.py`` load - written to a file
(``convert_deepspeed_checkpoint``) or kept in memory (``release_state_dict``: what ``load_from``,
``tools/test.py`` and ``tools/infer.py`` do with a checkpoint directory).

``zero_to_fp32`` unpickles with ``weights_only=False``; it runs under ``compat.safe_zero_to_fp32``,
which hands it ``load_torch_file`` instead, so a checkpoint directory from elsewhere cannot run code
here either."""
import glob
import json
import logging
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from internvl.checkpoint import load_torch_file, write_atomic

from ..compat import safe_zero_to_fp32

logger = logging.getLogger(__name__)


def is_deepspeed_checkpoint(path: str | os.PathLike) -> bool:
    return Path(path).is_dir() and bool(glob.glob(os.path.join(path, '*model_states.pt')))


RELEASE_SUFFIXES = ('.pth', '.safetensors')


def release_state_dict(src: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """The fp32 state dict and the run's meta of ``src``, a DeepSpeed checkpoint directory, in memory."""
    src = Path(src).resolve()
    if not is_deepspeed_checkpoint(src):
        raise FileNotFoundError(f'{src} is not a DeepSpeed checkpoint directory (no *model_states.pt in it)')
    with safe_zero_to_fp32() as zero_to_fp32:
        state_dict = zero_to_fp32.get_fp32_state_dict_from_zero_checkpoint(str(src.parent), tag=src.name)
    states = load_torch_file(sorted(src.glob('*model_states.pt'))[0])
    # zero_to_fp32 rebuilds what the optimizer holds; parameters it never saw (a frozen backbone) are
    # in the model states' own state dict (ZeRO-1/2 keep the whole module there).
    for key, value in (states.get('module') or {}).items():
        if key not in state_dict and value.numel() > 0:
            state_dict[key] = value
    state_dict = {k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()}
    return state_dict, states.get('meta', {})


def convert_deepspeed_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> int:
    """Write ``src`` (a DeepSpeed checkpoint directory) as one fp32 checkpoint; returns #tensors.

    ``dst`` ending in ``.pth``: an mmengine checkpoint ``{'meta', 'state_dict'}``; in ``.safetensors``:
    the state dict, the meta as JSON in the file's metadata (``meta``). Both load with ``load_from`` and
    ``tools/test.py`` (which also take the directory itself, released in memory)."""
    dst = Path(dst)
    if dst.suffix not in RELEASE_SUFFIXES:
        raise ValueError(f'{dst}: the released checkpoint must end in one of {list(RELEASE_SUFFIXES)}')
    state_dict, meta = release_state_dict(src)
    if dst.suffix == '.safetensors':
        tensors = {k: v.contiguous() for k, v in state_dict.items()}
        metadata = {'format': 'mmengine', 'meta': json.dumps(meta, default=str)}
        write_atomic(dst, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    else:
        write_atomic(dst, lambda tmp: torch.save({'meta': meta, 'state_dict': state_dict}, tmp))
    logger.info('wrote %s (%d tensors, fp32) from the DeepSpeed checkpoint %s', dst, len(state_dict), src)
    return len(state_dict)
