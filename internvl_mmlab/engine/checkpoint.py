"""Checkpoints as our runs read them: safely, and only complete ones.

- ``load_local_checkpoint`` is mmengine's loader for local files without unpickling code: a pickle is
  read through the core's ``load_torch_file``, which allows tensors, numpy data and the inert classes
  of ``checkpoint_classes`` (what mmengine's and DeepSpeed's checkpoints pickle) and refuses anything
  else by name; a ``.safetensors`` file reads as ``{'state_dict': ...}``; a DeepSpeed checkpoint
  directory is released in memory (``release.py``). ``register_safe_loading``, run when
  ``internvl_mmlab`` is imported, registers it with mmengine's ``CheckpointLoader``: mmengine's own
  loader calls ``torch.load`` without ``weights_only``, so since torch 2.6 it cannot read mmengine's
  checkpoints, whose meta pickles message-hub objects (mmengine issue #1655).
- ``register_checkpoint_adapter``: a task layer's reader of checkpoints laid out by other code (the
  segmentation layer's: OpenGVLab's released mmseg 0.x segmentors), applied by ``load_local_checkpoint``
  to what it read, so that every loader above sees our model's layout.
- ``backbone_from_run_config`` reads the ViT a run trained from the config it saved (registered with
  the core's checkpoint reader by ``internvl_mmlab.models``).
- ``resumable_checkpoint(work_dir)`` picks what ``--resume`` resumes: ``last_checkpoint``'s target and
  every ``iter_N`` / ``epoch_N`` of the work dir, newest first, each checked (every zip member's CRC;
  a DeepSpeed directory's model-states file). A bad one is reported by name and the previous one used.
  (A checkpoint under its own name is complete: the runners of ``runners.py`` write it atomically.)
"""
import ast
import json
import logging
import os
import os.path as osp
import pickle
import re
import zipfile
from typing import Any, Callable, Optional

from ..errors import NothingToResumeError
from .release import is_deepspeed_checkpoint, release_state_dict

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = re.compile(r'^(iter|epoch)_(\d+)\.pth$')

# (what a file read into, its path) -> {'state_dict': ..., 'meta': ...} in our layout, or None: not its format
CheckpointAdapter = Callable[[Any, str], Optional[dict]]
CHECKPOINT_ADAPTERS: list[CheckpointAdapter] = []


def register_checkpoint_adapter(adapter: CheckpointAdapter) -> None:
    """Have ``load_local_checkpoint`` hand what it reads to ``adapter`` (tried in the order registered;
    the first that returns a checkpoint wins). An adapter logs the layout it found, and raises
    ``CheckpointError`` naming the file and key for a file of its format that it cannot map."""
    if adapter not in CHECKPOINT_ADAPTERS:
        CHECKPOINT_ADAPTERS.append(adapter)


def _adapt(obj: Any, filename: str) -> Any:
    for adapter in CHECKPOINT_ADAPTERS:
        adapted = adapter(obj, filename)
        if adapted is not None:
            return adapted
    return obj


def _message_hub_getattr(obj: Any, name: str) -> Any:
    """``getattr`` as mmengine's message hub pickles it (``HistoryBuffer.statistics_methods`` holds the
    class's own methods, pickled as ``getattr(HistoryBuffer, 'mean')``): those statistics methods of
    ``HistoryBuffer`` only. A plain ``getattr`` in the allowlist would let a pickle reach anything."""
    from mmengine.logging import HistoryBuffer
    # the four built in (registered on first use) and any registered with HistoryBuffer.register_statistics
    if obj is not HistoryBuffer or name not in {'min', 'max', 'current', 'mean', *HistoryBuffer._statistics_methods}:
        raise pickle.UnpicklingError(f'getattr({obj!r}, {name!r}) is not allowed in a checkpoint')
    return getattr(obj, name)


def checkpoint_classes() -> list:
    """What mmengine's checkpoints (message hub, configs) and DeepSpeed's (loss scaler, ZeRO stage,
    fragment addresses) pickle besides tensors and numpy data (allowed by the core): inert classes."""
    from mmengine.config import ConfigDict
    from mmengine.logging import HistoryBuffer
    classes = [HistoryBuffer, ConfigDict, (_message_hub_getattr, 'builtins.getattr')]
    try:
        from deepspeed.runtime.fp16.loss_scaler import LossScaler
        from deepspeed.runtime.zero.config import ZeroStageEnum
        from deepspeed.utils.tensor_fragment import fragment_address
        classes += [LossScaler, ZeroStageEnum, fragment_address]
    except ImportError:
        pass
    return classes


def load_local_checkpoint(filename: str, map_location: Any = None, mmap: bool = False) -> Any:
    """mmengine's loader for local files, without unpickling code: pickles through ``load_torch_file``
    (memory-mapped with ``mmap``), safetensors files as ``{'state_dict': tensors, 'meta': ...}`` (a
    DeepSpeed release keeps the run's meta as JSON in the metadata), a DeepSpeed checkpoint directory
    released in memory to the same (fp32, through DeepSpeed's ``zero_to_fp32``; nothing is written). A
    file another code base laid out is mapped by the adapter registered for it."""
    from mmengine.logging import print_log

    from internvl.checkpoint import load_torch_file, read_weights
    filename = os.path.expanduser(filename)
    if is_deepspeed_checkpoint(filename):
        state_dict, meta = release_state_dict(filename)
        print_log(f'{filename}: a DeepSpeed checkpoint directory, released in memory ({len(state_dict)} tensors, '
                  f'fp32)', logger='current')
        return {'state_dict': state_dict, 'meta': meta}
    if not os.path.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    if filename.endswith('.safetensors'):
        state_dict, metadata, _ = read_weights(filename)
        if 'meta' in metadata:
            return {'state_dict': state_dict, 'meta': json.loads(metadata['meta'])}
        adapted = _adapt(state_dict, filename)
        return {'state_dict': state_dict, 'meta': metadata} if adapted is state_dict else adapted
    return _adapt(load_torch_file(filename, map_location=map_location, mmap=mmap), filename)


def register_safe_loading() -> None:
    """Add ``checkpoint_classes`` to the core's allowlist and read local checkpoints with
    ``load_local_checkpoint`` (mmengine's ``CheckpointLoader.register_scheme``, its extension point):
    ``load_from``, ``--resume``, mmseg's ``init_model`` and mmdet's inferencer all read through it."""
    from mmengine.runner.checkpoint import CheckpointLoader

    from internvl.checkpoint import allow_pickled_classes
    allow_pickled_classes(checkpoint_classes())
    CheckpointLoader.register_scheme(prefixes='', loader=load_local_checkpoint, force=True)


class _NotLiteral(Exception):
    pass


def _literal(node: ast.AST) -> Any:
    """A config value written as literals and ``dict(...)`` calls, read without executing anything."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == 'dict' and not node.args:
        return {kw.arg: _literal(kw.value) for kw in node.keywords if kw.arg is not None}
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        return -node.operand.value
    raise _NotLiteral


def backbone_from_run_config(obj: dict, metadata: dict[str, str]) -> Optional[dict[str, Any]]:
    """``model.backbone`` of the mmengine run that saved a checkpoint, from the config text that is the
    ``cfg`` of the checkpoint's ``meta`` (a DeepSpeed release keeps that meta as JSON in the metadata),
    parsed as Python literals without executing it; None when the checkpoint carries no such config.
    ``internvl_mmlab.models`` registers it with the core's checkpoint reader, so that ``pretrained=``,
    ``convert_checkpoint`` and ``extract_features`` build the ViT the run trained."""
    meta = obj.get('meta') if isinstance(obj.get('meta'), dict) else None
    if meta is None and 'meta' in metadata:
        try:
            meta = json.loads(metadata['meta'])
        except json.JSONDecodeError:
            return None
    text = meta.get('cfg') if isinstance(meta, dict) else None
    if not isinstance(text, str):
        return None
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == 'model' for t in node.targets):
            keywords = node.value.keywords if isinstance(node.value, ast.Call) else []
            for keyword in keywords:  # only the backbone need be literal
                if keyword.arg == 'backbone':
                    try:
                        backbone = _literal(keyword.value)
                    except _NotLiteral:
                        return None
                    return backbone if isinstance(backbone, dict) else None
    return None


def checkpoint_problem(path: str) -> Optional[str]:
    """Why ``path`` (a checkpoint file or DeepSpeed directory) cannot be resumed from, or None if it can."""
    if osp.isdir(path):
        files = [osp.join(path, f) for f in sorted(os.listdir(path)) if f.endswith('.pt')]
        if not any(f.endswith('model_states.pt') for f in files):
            return 'a DeepSpeed checkpoint directory without its model-states file'
    elif osp.isfile(path):
        files = [path]
    else:
        return 'not found'
    for file in files:
        try:
            with zipfile.ZipFile(file) as archive:
                bad = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            return f'{osp.basename(file)} is truncated or corrupt ({e})'
        if bad is not None:
            return f'{osp.basename(file)}: member {bad} fails its CRC check (corrupt)'
    return None


def resumable_checkpoint(work_dir: str) -> Optional[str]:
    """The newest complete checkpoint of ``work_dir`` (see the module docstring); None when it has no
    checkpoint at all (a fresh start). Every checkpoint there corrupt is ``NothingToResumeError``:
    mmengine would otherwise resume from ``last_checkpoint``, the corrupt file itself."""
    candidates = []
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            target = f.read().strip()
        if target:
            candidates.append(target)
    numbered = [(int(m.group(2)), osp.join(work_dir, name)) for name in os.listdir(work_dir)
                if (m := CHECKPOINT_NAME.match(name))] if osp.isdir(work_dir) else []
    candidates += [path for _, path in sorted(numbered, reverse=True)]
    seen = set()
    for path in candidates:
        if path in seen:
            continue
        seen.add(path)
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        logger.error('cannot resume from %s: %s; trying the previous checkpoint', path, problem)
        print(f'error: cannot resume from {path}: {problem}; trying the previous checkpoint', flush=True)
    if seen:
        raise NothingToResumeError(f'--resume: no checkpoint in {work_dir} is complete ({len(seen)} truncated or '
                                   f'corrupt, listed above); move them away to start afresh')
    return None
