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
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional

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


def _read_file(path: Path, trust_pickled_code: bool = False) -> tuple[dict, dict[str, str]]:
    """One weights file -> (its top-level object, safetensors metadata or {})."""
    if path.suffix == '.safetensors':
        try:
            with safe_open(str(path), framework='pt', device='cpu') as f:
                return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f'{path}: not a readable safetensors file: {e}') from e
    return load_torch_file(path, mmap=True, trust_pickled_code=trust_pickled_code), {}


def _numpy_classes() -> list:
    """numpy scalars, dtypes and arrays (training meta: seeds, metric values), pickled as data."""
    try:
        import numpy as np
    except ImportError:
        return []
    dtypes = [type(np.dtype(t)) for t in ('float64', 'float32', 'float16', 'int64', 'int32', 'uint8', 'bool')]
    return [np.ndarray, np.dtype, np._core.multiarray._reconstruct, np._core.multiarray.scalar, *dtypes]


# Classes besides tensors that a pickled checkpoint may hold and that are known to be inert. Layers
# above the core add their own (``internvl_mmlab.compat`` adds what mmengine's checkpoints pickle).
_ALLOWED_CLASSES: list = _numpy_classes()


def allow_pickled_classes(classes: list) -> None:
    """Let ``load_torch_file`` unpickle ``classes`` besides tensors and containers: types or functions,
    or ``(object, 'module.name')`` for an object that stands in for the pickled global of that name."""
    _ALLOWED_CLASSES.extend(c for c in classes if c not in _ALLOWED_CLASSES)


class UnsafeCheckpointError(CheckpointError):
    """A pickled checkpoint that holds objects outside the allowlist (unpickling them could run code)."""


def _refused_classes(path: Path, error: Exception) -> list[str]:
    """The globals of ``path``'s pickle outside the allowlist; [] when the unpickler failed for another
    reason (a corrupt file)."""
    try:
        with torch.serialization.safe_globals(_ALLOWED_CLASSES):
            found = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        if found:
            return found
    except Exception:  # noqa: BLE001  (legacy, non-zip files: the unpickler's own message names the class)
        pass
    return re.findall(r'Unsupported global: GLOBAL ([\w.]+)', str(error))[:1]


def _is_torch_file(path: Path) -> bool:
    """A ``torch.save`` file: a zip archive (since torch 1.6) or a pickle (protocol 2+ starts with 0x80)."""
    with open(path, 'rb') as f:
        head = f.read(2)
    return head == b'PK' or head[:1] == b'\x80'


def load_torch_file(path: str | os.PathLike, map_location: Any = 'cpu', mmap: bool = False,
                    trust_pickled_code: bool = False) -> Any:
    """``torch.load`` that never runs code from the file: ``weights_only=True`` with the classes of
    ``allow_pickled_classes`` allowed. Anything else is refused with an ``UnsafeCheckpointError`` naming
    the file and the classes. ``trust_pickled_code=True`` is the explicit opt-in for a file the user
    trusts (full unpickling, logged as a warning); nothing falls back to it by itself."""
    path = Path(path)
    if path.is_file() and not _is_torch_file(path):
        raise CheckpointError(f'{path}: not a checkpoint (expected a torch.save file, a .safetensors file or a '
                              f'model folder)')
    if trust_pickled_code:
        logger.warning('%s: unpickling with weights_only=False because trust_pickled_code=True was given: '
                       'this runs any code the file carries', path)
        try:
            return torch.load(path, map_location=map_location, weights_only=False)
        except Exception as e:  # noqa: BLE001  (any unpickling failure means an unreadable file)
            raise CheckpointError(f'{path}: not a readable PyTorch checkpoint: {e}') from e
    try:
        with torch.serialization.safe_globals(_ALLOWED_CLASSES):
            try:
                return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
            except RuntimeError as e:
                if not mmap or 'mmap' not in str(e):
                    raise
            # legacy (non-zip) serialisation cannot be memory-mapped
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        classes = _refused_classes(path, e)
        if not classes:
            raise CheckpointError(f'{path}: not a readable PyTorch checkpoint: {e}') from None
        raise UnsafeCheckpointError(
            f'{path}: refused to unpickle {", ".join(classes)}: the file holds objects besides tensors, and '
            f'unpickling them could run code from the file. If you trust its source, convert it once: '
            f'python tools/convert_checkpoint.py {path} OUT.safetensors --trust-pickled-code') from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f'{path}: not a readable PyTorch checkpoint: {e}') from e


def read_weights(path: str | os.PathLike,
                 trust_pickled_code: bool = False) -> tuple[dict, dict[str, str], list[Path]]:
    """Read a checkpoint file or directory -> (merged top-level objects, metadata, files read).
    Pickled files are read by ``load_torch_file`` (``trust_pickled_code``: see there)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f'checkpoint not found: {path}')
    files = _weights_in_dir(path) if path.is_dir() else [path]
    merged: dict = {}
    metadata: dict[str, str] = {}
    for file in tqdm(files, desc=f'reading {path.name}', unit='file', disable=len(files) < 2):
        obj, meta = _read_file(file, trust_pickled_code)
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


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


def write_atomic(dst: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``dst``, then move it onto ``dst``: an existing
    file is never half-written, and a failed write leaves no temporary file behind. The file gets the
    mode a plain ``open`` would give it (0666 less the umask; ``mkstemp`` alone makes it 0600, unreadable
    to the rest of a team on a shared cluster)."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f'.{dst.name}.', suffix='.tmp')
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_safetensors_atomic(state_dict: StateDict, dst: str | os.PathLike,
                            metadata: dict[str, str]) -> None:
    """Write ``state_dict`` to ``dst`` as safetensors, atomically (``write_atomic``)."""
    tensors = {k: v.detach().contiguous() for k, v in state_dict.items()}
    write_atomic(dst, lambda tmp: save_file(tensors, tmp, metadata=metadata))
