"""Reading checkpoint files of every layout met in the wild, and writing ours atomically.

A checkpoint path is a directory (a Hugging Face repo: ``config.json`` beside ``model.safetensors``,
``pytorch_model.bin``, or shards listed by ``*.index.json``; or a folder holding one weights file) or
a single file (``.safetensors``, ``.bin``, ``.pth``, ``.pt``, ``.ckpt``). Nothing here knows key
names: that is ``formats.py``.
"""
import json
import logging
import os
import pickle
import tempfile
from pathlib import Path
from typing import Callable, Optional

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from tqdm import tqdm

logger = logging.getLogger(__name__)

INDEX_FILES = ('model.safetensors.index.json', 'pytorch_model.bin.index.json')
SINGLE_FILES = ('model.safetensors', 'pytorch_model.bin')
WEIGHT_SUFFIXES = ('.safetensors', '.bin', '.pth', '.pt', '.ckpt')

StateDict = dict[str, torch.Tensor]


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or understood; the message names the file and the problem."""


def _weights_in_dir(directory: Path) -> list[Path]:
    for name in INDEX_FILES:
        index = directory / name
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())['weight_map']
            except (json.JSONDecodeError, KeyError) as e:
                raise CheckpointError(f'{index}: not a valid shard index (expected a "weight_map" '
                                      f'object): {e}') from e
            shards = sorted({directory / shard for shard in weight_map.values()})
            absent = [str(s) for s in shards if not s.is_file()]
            if absent:
                raise CheckpointError(f'{index} lists shards that are missing: {absent}')
            return shards
    for name in SINGLE_FILES:
        if (directory / name).is_file():
            return [directory / name]
    candidates = sorted(p for p in directory.iterdir() if p.suffix in WEIGHT_SUFFIXES)
    if len(candidates) == 1:
        return candidates
    found = sorted(p.name for p in directory.iterdir())
    raise CheckpointError(
        f'{directory}: cannot tell which file holds the weights; expected one of '
        f'{list(INDEX_FILES + SINGLE_FILES)} or exactly one *{"/*".join(WEIGHT_SUFFIXES)} file, '
        f'found {found[:20]}')


def _read_file(path: Path) -> tuple[dict, dict[str, str]]:
    """One weights file -> (its top-level object, safetensors metadata or {})."""
    if path.suffix == '.safetensors':
        try:
            with safe_open(str(path), framework='pt', device='cpu') as f:
                return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f'{path}: not a readable safetensors file: {e}') from e
    try:
        return torch.load(path, map_location='cpu', weights_only=True, mmap=True), {}
    except RuntimeError:  # legacy (non-zip) serialisation cannot be memory-mapped
        pass
    except pickle.UnpicklingError:
        return _read_pickle_with_objects(path), {}
    try:
        return torch.load(path, map_location='cpu', weights_only=True), {}
    except pickle.UnpicklingError:
        return _read_pickle_with_objects(path), {}
    except (RuntimeError, EOFError, OSError) as e:
        raise CheckpointError(f'{path}: not a readable PyTorch checkpoint: {e}') from e


def _read_pickle_with_objects(path: Path) -> dict:
    # mmengine checkpoints pickle their meta (message hub, numpy scalars) next to the weights.
    logger.warning('%s holds pickled objects besides tensors (e.g. an mmengine checkpoint); loading it '
                   'with weights_only=False: only load checkpoints you trust', path)
    try:
        return torch.load(path, map_location='cpu', weights_only=False)
    except Exception as e:  # noqa: BLE001  (any unpickling failure means an unreadable file)
        raise CheckpointError(f'{path}: not a readable PyTorch checkpoint: {e}') from e


def read_weights(path: str | os.PathLike) -> tuple[dict, dict[str, str], list[Path]]:
    """Read a checkpoint file or directory -> (merged top-level objects, metadata, files read)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f'checkpoint not found: {path}')
    files = _weights_in_dir(path) if path.is_dir() else [path]
    merged: dict = {}
    metadata: dict[str, str] = {}
    for file in tqdm(files, desc=f'reading {path.name}', unit='file', disable=len(files) < 2):
        obj, meta = _read_file(file)
        if not isinstance(obj, dict):
            raise CheckpointError(f'{file}: expected a dict of tensors, got {type(obj).__name__}')
        merged.update(obj)
        metadata.update(meta)
    return merged, metadata, files


def read_config(path: str | os.PathLike) -> Optional[dict]:
    """``config.json`` of a checkpoint directory, or beside a checkpoint file; None if there is none."""
    path = Path(path)
    config = (path if path.is_dir() else path.parent) / 'config.json'
    if not config.is_file():
        return None
    try:
        return json.loads(config.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f'{config}: not valid JSON: {e}') from e


def write_atomic(dst: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``dst``, then move it onto ``dst``: an existing
    file is never half-written, and a failed write leaves no temporary file behind."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f'.{dst.name}.', suffix='.tmp')
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_safetensors_atomic(state_dict: StateDict, dst: str | os.PathLike,
                            metadata: dict[str, str]) -> None:
    """Write ``state_dict`` to ``dst`` as safetensors, atomically (``write_atomic``)."""
    tensors = {k: v.detach().contiguous() for k, v in state_dict.items()}
    write_atomic(dst, lambda tmp: save_file(tensors, tmp, metadata=metadata))
