from .intern_vit import ARCH_KEYS, ARCH_PRESETS, InternViT, build_on_meta, count_parameters, resolve_arch
from .pos_embed import resample_patch_embed, resample_pos_embed
from .simple_fpn import SimpleFPN

__all__ = ['ARCH_KEYS', 'ARCH_PRESETS', 'InternViT', 'build_on_meta', 'count_parameters', 'resolve_arch',
           'resample_patch_embed', 'resample_pos_embed', 'SimpleFPN']
