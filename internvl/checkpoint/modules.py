"""Reading a whole model folder (config.json + weights, sharded or not) and loading it into a model
built on the meta device, for the chat and contrastive models."""
import logging
import os
from contextlib import contextmanager
from typing import Iterable, Iterator, Optional

import torch
from torch import nn

from .formats import unwrap
from .io import CheckpointError, read_config, read_weights
from .loading import check_state_dict

logger = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]


def read_model_folder(path: str | os.PathLike) -> tuple[dict, StateDict]:
    """(config.json as a dict, every tensor of the folder's weight files)."""
    config = read_config(path)
    if config is None:
        raise CheckpointError(f'{path}: no config.json; expected a model folder (config.json + weights)')
    obj, _, _ = read_weights(path)
    state_dict, _ = unwrap(obj)
    return config, state_dict


def take_prefix(state_dict: StateDict, prefix: str) -> StateDict:
    """The entries under ``prefix``, with the prefix removed."""
    return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}


def load_module(module: nn.Module, state_dict: StateDict, source: str,
                allow_missing: tuple[str, ...] = ()) -> None:
    """Strictly load ``state_dict`` into ``module`` (built on the meta device: tensors are assigned).
    ``allow_missing`` names keys that may be absent (tied weights)."""
    missing, _ = check_state_dict(module.state_dict(), state_dict, source, strict=False)
    missing = [k for k in missing if k not in allow_missing]
    unexpected = sorted(set(state_dict) - set(module.state_dict()))
    if missing or unexpected:
        raise CheckpointError(f'{source}: missing keys {missing}; unexpected keys {unexpected}')
    module.load_state_dict(state_dict, strict=False, assign=True)


def refuse_unconsumed(keys: Iterable[str], parts: tuple[str, ...], source: str) -> None:
    """Refuse, by name, the ``keys`` (the entries left outside the vision tower) that no part of the model
    takes: a part is a prefix (``'mlp1.'``) or a whole name (``'logit_scale'``). A weight the model
    would silently drop is a checkpoint of another model, or a conversion that went wrong."""
    prefixes = tuple(p for p in parts if p.endswith('.'))
    left = sorted(k for k in keys if not k.startswith(prefixes) and k not in parts)
    if left:
        shown = ', '.join(left[:10]) + (f' and {len(left) - 10} more' if len(left) > 10 else '')
        raise CheckpointError(f'{source}: {len(left)} weights belong to no part of this model ({shown}); the '
                              f'model takes the vision tower and {", ".join(parts)}')


@contextmanager
def on_meta() -> Iterator[None]:
    """Build modules without allocating or initialising their weights."""
    with torch.device('meta'):
        yield


def materialise_buffers(model: nn.Module) -> None:
    """Recompute the buffers that are not saved in checkpoints (rotary frequencies) of a model built on
    the meta device: each module holding one is rebuilt on the CPU from its config."""
    for name, module in model.named_modules():
        if not any(b is not None and b.is_meta for b in module._buffers.values()):
            continue
        config = getattr(module, 'config', None)
        if config is None:
            raise RuntimeError(f'{name} ({type(module).__name__}) has buffers on the meta device and no config '
                               f'to rebuild them from')
        fresh = type(module)(config=config)
        for key, buffer in fresh._buffers.items():
            module._buffers[key] = buffer


def finish_loading(model: nn.Module, dtype: Optional[torch.dtype]) -> nn.Module:
    """Meta-built, loaded ``model`` -> checked for unloaded weights, cast to ``dtype`` (float32 when
    None, as transformers' ``from_pretrained``), in eval mode."""
    materialise_buffers(model)
    left = [n for n, p in model.named_parameters() if p.is_meta]
    if left:
        raise CheckpointError(f'weights never loaded: {left[:10]}')
    return model.to(dtype or torch.float32).eval()
