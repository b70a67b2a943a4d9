"""The shared core: one InternViT, checkpoint loading for every published format. Plain PyTorch;
nothing here imports mmseg or mmdet."""
from .apis.convert import convert_checkpoint
from .arch import ARCH_PRESETS
from .checkpoint import CheckpointError, load_pretrained, read_checkpoint_arch
from .models import InternViT, build_on_meta, count_parameters

__all__ = ['ARCH_PRESETS', 'CheckpointError', 'InternViT', 'build_on_meta', 'convert_checkpoint',
           'count_parameters', 'load_pretrained', 'read_checkpoint_arch']
