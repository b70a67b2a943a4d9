"""Checkpoint reading, format detection and loading for InternViT (see ``formats`` for the layouts). It
never imports ``internvl.models``: the models import it, and loading takes the model it is handed."""
from .formats import (OUR_FORMAT, CanonicalCheckpoint, DetectedFormat, arch_from_config, convert_opengvlab,
                      convert_transformers, detect_format, infer_arch, register_arch_reader, register_prefix,
                      to_canonical)
from .io import (CheckpointError, UnsafeCheckpointError, allow_pickled_classes, load_torch_file,
                 read_config, read_weights, save_safetensors_atomic, write_atomic)
from .loading import (check_arch, check_state_dict, load_canonical, load_pretrained, read_canonical,
                      read_checkpoint_arch)
from .modules import finish_loading, load_module, on_meta, read_model_folder, refuse_unconsumed, take_prefix

__all__ = [
    'CanonicalCheckpoint', 'CheckpointError', 'DetectedFormat', 'OUR_FORMAT', 'UnsafeCheckpointError',
    'allow_pickled_classes', 'arch_from_config', 'check_arch', 'check_state_dict', 'convert_opengvlab',
    'convert_transformers', 'detect_format', 'finish_loading', 'infer_arch', 'load_canonical', 'load_module',
    'load_pretrained', 'load_torch_file', 'on_meta', 'read_canonical', 'read_checkpoint_arch', 'read_config',
    'read_model_folder', 'read_weights', 'refuse_unconsumed', 'register_arch_reader', 'register_prefix',
    'save_safetensors_atomic', 'take_prefix', 'to_canonical', 'write_atomic',
]
