"""The InternViT architectures: one table of named presets (``ARCH_PRESETS``), and the check that turns
a preset name or a dict with exactly ``ARCH_KEYS`` into an arch dict. Models, checkpoint readers,
configs and tools all take their architectures from here."""
import copy
from typing import Any, Union

ARCH_KEYS = ('embed_dims', 'num_layers', 'num_heads', 'mlp_ratio', 'norm_type', 'qk_norm', 'qkv_bias',
             'layer_scale_init', 'patch_size', 'img_size')
NORM_TYPES = ('rms', 'ln')

ARCH_PRESETS: dict[str, dict[str, Any]] = {
    # InternViT-6B-224px (InternVL-C/G, the segmentation paper's backbone): 48 blocks.
    'internvit-6b-224px': dict(embed_dims=3200, num_layers=48, num_heads=25, mlp_ratio=4.0, norm_type='rms',
                               qk_norm=True, qkv_bias=False, layer_scale_init=0.1, patch_size=14,
                               img_size=224),
    # InternViT-6B-448px V1-0 / V1-2 / V1-5 / V2.5: the last 3 blocks of the 224px model dropped.
    'internvit-6b-448px': dict(embed_dims=3200, num_layers=45, num_heads=25, mlp_ratio=4.0, norm_type='rms',
                               qk_norm=True, qkv_bias=False, layer_scale_init=0.1, patch_size=14,
                               img_size=448),
    # InternViT-300M-448px: distilled from 6B-448px-V1-5.
    'internvit-300m-448px': dict(embed_dims=1024, num_layers=24, num_heads=16, mlp_ratio=4.0, norm_type='ln',
                                 qk_norm=False, qkv_bias=True, layer_scale_init=1.0, patch_size=14,
                                 img_size=448),
    # Tiny presets of the same code, for tests and CPU demos.
    'internvit-tiny-rms': dict(embed_dims=64, num_layers=3, num_heads=4, mlp_ratio=4.0, norm_type='rms',
                               qk_norm=True, qkv_bias=False, layer_scale_init=0.1, patch_size=14, img_size=56),
    'internvit-tiny-ln': dict(embed_dims=64, num_layers=3, num_heads=4, mlp_ratio=4.0, norm_type='ln',
                              qk_norm=False, qkv_bias=True, layer_scale_init=1.0, patch_size=14, img_size=56),
}
# Patch 16 (the detection recipes, ViTDet's stride 16): the 14-pixel checkpoints' kernels are resized on
# load, and the image size keeps their position grid (16 x 16 for 224px, 32 x 32 for 448px).
for _name, _img_size in (('internvit-6b-224px', 256), ('internvit-6b-448px', 512), ('internvit-300m-448px', 512)):
    ARCH_PRESETS[f'{_name}-p16'] = dict(ARCH_PRESETS[_name], patch_size=16, img_size=_img_size)


def resolve_arch(arch: Union[str, dict]) -> dict[str, Any]:
    """A preset name or a dict with exactly ``ARCH_KEYS`` -> a validated copy of the arch dict."""
    if isinstance(arch, str):
        if arch not in ARCH_PRESETS:
            raise ValueError(f'unknown InternViT arch {arch!r}; expected one of {sorted(ARCH_PRESETS)} '
                             f'or a dict with the keys {list(ARCH_KEYS)}')
        return copy.deepcopy(ARCH_PRESETS[arch])
    if not isinstance(arch, dict):
        raise TypeError(f'arch must be a preset name or a dict, got {type(arch).__name__}')
    missing = [k for k in ARCH_KEYS if k not in arch]
    unknown = [k for k in arch if k not in ARCH_KEYS]
    if missing or unknown:
        raise ValueError(f'custom InternViT arch: missing keys {missing}, unknown keys {unknown}; '
                         f'expected exactly {list(ARCH_KEYS)}')
    if arch['norm_type'] not in NORM_TYPES:
        raise ValueError(f"arch['norm_type']={arch['norm_type']!r}; expected one of {list(NORM_TYPES)}")
    if arch['img_size'] % arch['patch_size']:
        raise ValueError(f"arch['img_size']={arch['img_size']} is not a multiple of "
                         f"arch['patch_size']={arch['patch_size']}")
    return copy.deepcopy(dict(arch))
