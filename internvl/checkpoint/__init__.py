"""Checkpoint reading, format detection and conversion for InternViT (see ``formats`` for the layouts)."""
from .formats import (CanonicalCheckpoint, DetectedFormat, arch_from_config, convert_opengvlab,
                      convert_transformers, detect_format, infer_arch, to_canonical)
from .io import (CheckpointError, UnsafeCheckpointError, allow_pickled_classes, load_torch_file,
                 read_config, read_weights, save_safetensors_atomic, write_atomic)
from .loading import (build_from_pretrained, check_state_dict, convert_checkpoint, load_canonical, load_pretrained,
                      read_canonical, read_checkpoint_arch)

__all__ = [
    'CanonicalCheckpoint', 'CheckpointError', 'DetectedFormat', 'UnsafeCheckpointError', 'allow_pickled_classes',
    'arch_from_config', 'build_from_pretrained', 'check_state_dict', 'convert_checkpoint',
    'load_torch_file',
    'convert_opengvlab', 'convert_transformers', 'detect_format', 'infer_arch', 'load_canonical', 'load_pretrained',
    'read_canonical', 'read_checkpoint_arch', 'read_config', 'read_weights', 'save_safetensors_atomic',
    'to_canonical', 'write_atomic',
]
