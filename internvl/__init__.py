"""The shared core: one InternViT, checkpoint loading for every published format. Plain PyTorch;
nothing here imports mmseg or mmdet."""
from .checkpoint import CheckpointError, convert_checkpoint, load_pretrained, read_checkpoint_arch
from .models import ARCH_PRESETS, InternViT, build_on_meta, count_parameters

__all__ = ['ARCH_PRESETS', 'CheckpointError', 'InternViT', 'build_on_meta', 'convert_checkpoint',
           'count_parameters', 'load_pretrained', 'read_checkpoint_arch']
