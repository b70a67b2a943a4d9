"""Checkpoint formats of InternViT: detection, pure converters to our key layout, arch from config.

Our canonical layout (``InternViT.state_dict()``) is the timm one of the original segmentation code:
``cls_token`` [1, 1, C], ``pos_embed`` [1, 1+N, C], ``patch_embed.proj.{weight,bias}``,
``blocks.N.{norm1, attn.qkv, attn.q_norm, attn.k_norm, attn.proj, ls1.gamma, norm2, mlp.fc1, mlp.fc2,
ls2.gamma}``. Foreign layouts, each found under an optional prefix:

- ``opengvlab``: OpenGVLab's remote-code ``InternVisionModel`` (``embeddings.patch_embedding``,
  ``encoder.layers.N.attn.qkv`` fused with rows q|k|v, ``ls1``/``ls2`` as bare tensors);
- ``transformers``: transformers' native ``InternVLVisionModel`` (``encoder.layer.N.attention.
  {q,k,v}_proj`` as three matrices, ``lambda_1``/``lambda_2``, ``layernorm_before``/``_after``);
- ``timm``: the original ``.pth`` files and this project's own checkpoints (already canonical).

Prefixes: ``vision_model.`` (a whole InternVL-Chat or InternVL-14B checkpoint), ``model.vision_tower.``
or ``vision_tower.`` (transformers' InternVLForConditionalGeneration), and those a layer above registers
for its own models (``register_prefix``: the OpenMMLab layer's segmentor and detector checkpoints keep
the ViT under ``backbone.vit.``). Keys outside the vision tower (language model, projectors, heads) are
set aside and reported, never loaded.
"""
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from .io import CheckpointError, StateDict

logger = logging.getLogger(__name__)

# layout name -> (key of the patch-embedding weight, roots of the vision tower's keys)
LAYOUTS: dict[str, tuple[str, tuple[str, ...]]] = {
    'timm': ('patch_embed.proj.weight', ('cls_token', 'pos_embed', 'patch_embed', 'blocks')),
    'opengvlab': ('embeddings.patch_embedding.weight', ('embeddings', 'encoder')),
    'transformers': ('embeddings.patch_embeddings.projection.weight', ('embeddings', 'encoder')),
}
PREFIXES: dict[str, str] = {
    '': 'a bare vision tower',
    'vision_model.': 'a whole InternVL-Chat / InternVL-14B checkpoint (its vision_model.*)',
    'model.vision_tower.': "transformers' InternVLForConditionalGeneration (its vision tower)",
    'vision_tower.': "transformers' InternVLForConditionalGeneration (its vision tower)",
}
WRAPPER_KEYS = ('module', 'state_dict', 'model')


def register_prefix(prefix: str, description: str) -> None:
    """Read InternViT weights found under ``prefix`` (a model that holds the ViT as a submodule; tried
    in the order registered, after the built-in ones), described as ``description`` in the log."""
    if not prefix.endswith('.'):
        raise ValueError(f'register_prefix: {prefix!r} must end with "."')
    PREFIXES.setdefault(prefix, description)
OUR_FORMAT = 'internvl-dense/intern_vit'


@dataclass
class DetectedFormat:
    layout: str
    prefix: str
    wrapper: Optional[str] = None
    ours: bool = False

    def describe(self) -> str:
        layout = 'this project\'s own format' if self.ours else {
            'timm': 'timm-style (original InternViT .pth)',
            'opengvlab': 'OpenGVLab remote-code InternVisionModel',
            'transformers': "transformers' native InternVLVisionModel",
        }[self.layout]
        text = f'{layout} in {PREFIXES[self.prefix]}'
        if self.prefix:
            text += f" under '{self.prefix}'"
        if self.wrapper:
            text += f" wrapped in {{'{self.wrapper}': ...}}"
        return text


# InternViT's construction options that change its output but not its weights (the detection backbone's)
VIT_OPTIONS = ('window_size', 'global_attn_indexes', 'use_cls_token')


@dataclass
class CanonicalCheckpoint:
    state_dict: StateDict
    format: DetectedFormat
    ignored: list[str] = field(default_factory=list)  # keys outside the vision tower
    options: dict[str, Any] = field(default_factory=dict)  # VIT_OPTIONS the source states


def unwrap(obj: dict) -> tuple[dict, Optional[str]]:
    """``{'module': sd}``, ``{'state_dict': sd, 'meta': ...}`` or ``{'model': sd}`` -> (sd, wrapper key)."""
    for key in WRAPPER_KEYS:
        inner = obj.get(key)
        if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
            return inner, key
    return obj, None


def detect_format(state_dict: StateDict, metadata: dict[str, str], source: str) -> DetectedFormat:
    """Find the layout by its patch-embedding key, trying each known prefix; fail naming what was seen."""
    for prefix in PREFIXES:
        for layout, (marker, _) in LAYOUTS.items():
            if prefix + marker in state_dict:
                ours = metadata.get('format') == OUR_FORMAT
                return DetectedFormat(layout=layout, prefix=prefix, ours=ours)
    looked_for = [marker for marker, _ in LAYOUTS.values()]
    sample = sorted(state_dict)[:12]
    raise CheckpointError(
        f'{source}: unknown checkpoint format: no InternViT patch embedding found. Looked for '
        f'{looked_for} under the prefixes {list(PREFIXES)}; the checkpoint has {len(state_dict)} '
        f'entries, the first being {sample}')


_OPENGVLAB_RULES = [
    (r'embeddings\.class_embedding', 'cls_token'),
    (r'embeddings\.position_embedding', 'pos_embed'),
    (r'embeddings\.patch_embedding\.(weight|bias)', r'patch_embed.proj.\1'),
    (r'encoder\.layers\.(\d+)\.ls([12])', r'blocks.\1.ls\2.gamma'),
    (r'encoder\.layers\.(\d+)\.((?:norm[12]|attn\.(?:qkv|q_norm|k_norm|proj)|mlp\.fc[12])\.(?:weight|bias))',
     r'blocks.\1.\2'),
]
_TRANSFORMERS_RULES = [
    (r'embeddings\.cls_token', 'cls_token'),
    (r'embeddings\.position_embeddings', 'pos_embed'),
    (r'embeddings\.patch_embeddings\.projection\.(weight|bias)', r'patch_embed.proj.\1'),
    (r'encoder\.layer\.(\d+)\.attention\.(q_norm|k_norm)\.weight', r'blocks.\1.attn.\2.weight'),
    (r'encoder\.layer\.(\d+)\.attention\.projection_layer\.(weight|bias)', r'blocks.\1.attn.proj.\2'),
    (r'encoder\.layer\.(\d+)\.layernorm_before\.(weight|bias)', r'blocks.\1.norm1.\2'),
    (r'encoder\.layer\.(\d+)\.layernorm_after\.(weight|bias)', r'blocks.\1.norm2.\2'),
    (r'encoder\.layer\.(\d+)\.lambda_([12])', r'blocks.\1.ls\2.gamma'),
    (r'encoder\.layer\.(\d+)\.mlp\.(fc[12]\.(?:weight|bias))', r'blocks.\1.mlp.\2'),
]
_QKV_SPLIT = re.compile(r'encoder\.layer\.(\d+)\.attention\.([qkv])_proj\.(weight|bias)')


def _rename(state_dict: StateDict, rules: list[tuple[str, str]]) -> StateDict:
    """Apply the first fully matching rule to each key; keys no rule matches are kept unchanged, so
    that loading reports them as unexpected by name."""
    compiled = [(re.compile(pattern), repl) for pattern, repl in rules]
    out = {}
    for key, value in state_dict.items():
        for pattern, repl in compiled:
            if pattern.fullmatch(key):
                key = pattern.sub(repl, key)
                break
        out[key] = value
    return out


def convert_opengvlab(state_dict: StateDict) -> StateDict:
    """OpenGVLab InternVisionModel keys (prefix removed) -> our keys. ``ls1`` [C] -> ``ls1.gamma`` [C]."""
    return _rename(state_dict, _OPENGVLAB_RULES)


def convert_transformers(state_dict: StateDict) -> StateDict:
    """transformers InternVLVisionModel keys (prefix removed) -> our keys.

    ``attention.{q,k,v}_proj`` ([C, C] each, bias [C] where present) are stacked into the fused
    ``attn.qkv`` [3C, C] in the order q | k | v that the fused checkpoints use.
    """
    parts: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    rest = {}
    for key, value in state_dict.items():
        match = _QKV_SPLIT.fullmatch(key)
        if match:
            layer, which, kind = match.groups()
            parts.setdefault((layer, kind), {})[which] = value
        else:
            rest[key] = value
    out = _rename(rest, _TRANSFORMERS_RULES)
    for (layer, kind), qkv in parts.items():
        if set(qkv) != {'q', 'k', 'v'}:
            raise CheckpointError(f'layer {layer}: attention {kind} has only {sorted(qkv)} of q/k/v projections')
        out[f'blocks.{layer}.attn.qkv.{kind}'] = torch.cat([qkv['q'], qkv['k'], qkv['v']], dim=0)
    return out


CONVERTERS = {'timm': dict, 'opengvlab': convert_opengvlab, 'transformers': convert_transformers}


def to_canonical(obj: dict, metadata: dict[str, str], source: str) -> CanonicalCheckpoint:
    """Any supported checkpoint object -> our key layout, with what was detected and set aside."""
    state_dict, wrapper = unwrap(obj)
    fmt = detect_format(state_dict, metadata, source)
    fmt.wrapper = wrapper
    roots = LAYOUTS[fmt.layout][1]
    tower, ignored = {}, []
    for key, value in state_dict.items():
        inner = key[len(fmt.prefix):] if key.startswith(fmt.prefix) else None
        if inner is not None and inner.split('.', 1)[0] in roots:
            tower[inner] = value
        else:
            ignored.append(key)
    return CanonicalCheckpoint(CONVERTERS[fmt.layout](tower), fmt, ignored)


# --- architecture from a config.json ------------------------------------------------------------

# Defaults of the two config classes, for keys a config.json leaves out.
_OPENGVLAB_DEFAULTS = dict(hidden_size=3200, num_hidden_layers=48, num_attention_heads=25,
                           intermediate_size=12800, norm_type='rms_norm', qk_normalization=False,
                           qkv_bias=False, initializer_factor=0.1, patch_size=14, image_size=224)
_TRANSFORMERS_DEFAULTS = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                              intermediate_size=4096, norm_type='layer_norm', use_qk_norm=False,
                              attention_bias=False, layer_scale_init_value=0.1, patch_size=14,
                              image_size=448)
_NORM_NAMES = {'rms_norm': 'rms', 'layer_norm': 'ln'}


def _square(value: Any, key: str) -> int:
    if isinstance(value, (list, tuple)):
        if len(set(value)) != 1:
            raise CheckpointError(f'config {key}={value}: only square sizes are supported')
        value = value[0]
    return int(value)


def arch_from_config(config: dict, source: str) -> dict[str, Any]:
    """An OpenGVLab or transformers config (vision-only or a whole chat model's) -> our arch dict."""
    cfg = config.get('vision_config', config)
    hf = 'use_qk_norm' in cfg or cfg.get('model_type') == 'internvl_vision'
    cfg = {**(_TRANSFORMERS_DEFAULTS if hf else _OPENGVLAB_DEFAULTS), **cfg}
    if cfg['norm_type'] not in _NORM_NAMES:
        raise CheckpointError(f"{source}: norm_type={cfg['norm_type']!r}; expected one of {list(_NORM_NAMES)}")
    return dict(
        embed_dims=int(cfg['hidden_size']),
        num_layers=int(cfg['num_hidden_layers']),
        num_heads=int(cfg['num_attention_heads']),
        mlp_ratio=cfg['intermediate_size'] / cfg['hidden_size'],
        norm_type=_NORM_NAMES[cfg['norm_type']],
        qk_norm=bool(cfg['use_qk_norm'] if hf else cfg['qk_normalization']),
        qkv_bias=bool(cfg['attention_bias'] if hf else cfg['qkv_bias']),
        layer_scale_init=float(cfg['layer_scale_init_value'] if hf else cfg['initializer_factor']),
        patch_size=_square(cfg['patch_size'], 'patch_size'),
        img_size=_square(cfg['image_size'], 'image_size'),
    )


# Readers of the architecture that a layer above stores in its own checkpoints (the OpenMMLab layer: the
# run's config in an mmengine checkpoint's meta): (checkpoint object, file metadata) -> a dict with
# 'arch' and any of VIT_OPTIONS, or None when the checkpoint is not theirs.
ArchReader = Callable[[dict, dict[str, str]], Optional[dict[str, Any]]]
ARCH_READERS: list[ArchReader] = []


def register_arch_reader(reader: ArchReader) -> None:
    """Let ``read_canonical`` take a checkpoint's architecture from ``reader`` (after config.json)."""
    if reader not in ARCH_READERS:
        ARCH_READERS.append(reader)


def infer_arch(state_dict: StateDict, presets: dict[str, dict], source: str) -> dict[str, Any]:
    """Arch of a canonical state dict from its shapes; the head count (which shapes do not show) and the
    layer-scale init come from a preset of the same width, of the same norm type when there is one."""
    try:
        dims = state_dict['cls_token'].shape[-1]
        kernel = state_dict['patch_embed.proj.weight'].shape[-1]
        positions = state_dict['pos_embed'].shape[1] - 1
        layers = 1 + max(int(k.split('.')[1]) for k in state_dict if k.startswith('blocks.'))
        hidden = state_dict['blocks.0.mlp.fc1.weight'].shape[0]
    except (KeyError, ValueError) as e:
        raise CheckpointError(f'{source}: cannot infer the architecture, entry {e} is missing') from e
    norm_type = 'ln' if 'blocks.0.norm1.bias' in state_dict else 'rms'
    same_width = sorted((p for p in presets.values() if p['embed_dims'] == dims),
                        key=lambda p: p['norm_type'] != norm_type)
    if not same_width:
        raise CheckpointError(f'{source}: no config.json and no preset of width {dims}, so the number of '
                              f'heads is unknown; give the arch explicitly')
    grid = round(positions ** 0.5)
    return dict(
        embed_dims=dims, num_layers=layers, num_heads=same_width[0]['num_heads'], mlp_ratio=hidden / dims,
        norm_type=norm_type,
        qk_norm='blocks.0.attn.q_norm.weight' in state_dict,
        qkv_bias='blocks.0.attn.qkv.bias' in state_dict,
        layer_scale_init=same_width[0]['layer_scale_init'], patch_size=kernel, img_size=grid * kernel)
