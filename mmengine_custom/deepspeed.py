"""DeepSpeed checkpoint release, shared by segmentation and detection: an mmengine DeepSpeed
checkpoint (a directory ``iter_N.pth/`` of model states and per-rank optimizer shards, any ZeRO stage,
any number of ranks) -> one ordinary mmengine checkpoint ``{'meta', 'state_dict'}`` in fp32, through
DeepSpeed's own ``zero_to_fp32``, which the plain Runner and ``tools/test.py`` load."""
import glob
import logging
import os
from pathlib import Path

import torch

from internvl.checkpoint import write_atomic

logger = logging.getLogger(__name__)


def is_deepspeed_checkpoint(path: str | os.PathLike) -> bool:
    return Path(path).is_dir() and bool(glob.glob(os.path.join(path, '*model_states.pt')))


def convert_deepspeed_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> int:
    """Write ``src`` (a DeepSpeed checkpoint directory) as one fp32 mmengine checkpoint; returns #tensors."""
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
    src = Path(src).resolve()
    if not is_deepspeed_checkpoint(src):
        raise FileNotFoundError(f'{src} is not a DeepSpeed checkpoint directory (no *model_states.pt in it)')
    state_dict = get_fp32_state_dict_from_zero_checkpoint(str(src.parent), tag=src.name)
    states = torch.load(sorted(src.glob('*model_states.pt'))[0], map_location='cpu', weights_only=False)
    # zero_to_fp32 rebuilds what the optimizer holds; parameters it never saw (a frozen backbone) are
    # in the model states' own state dict (ZeRO-1/2 keep the whole module there).
    for key, value in (states.get('module') or {}).items():
        if key not in state_dict and value.numel() > 0:
            state_dict[key] = value
    state_dict = {k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()}
    checkpoint = {'meta': states.get('meta', {}), 'state_dict': state_dict}
    write_atomic(dst, lambda tmp: torch.save(checkpoint, tmp))
    logger.info('wrote %s (%d tensors, fp32) from the DeepSpeed checkpoint %s', dst, len(state_dict), src)
    return len(state_dict)
