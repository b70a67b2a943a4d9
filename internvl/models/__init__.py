"""The core models. The vision-language models (chat, contrastive) need transformers and are imported
on first use, so that the dense-prediction layers importing ``InternViT`` do not load it."""
import importlib
from typing import Any

from .conversation import TEMPLATES, Conversation, get_conv_template
from .intern_vit import ARCH_KEYS, ARCH_PRESETS, InternViT, build_on_meta, count_parameters, resolve_arch
from ..pos_embed import resample_patch_embed, resample_pos_embed
from .simple_fpn import SimpleFeaturePyramid, SimpleFPN

_LAZY = {'InternVLChatModel': 'internvl_chat', 'pixel_shuffle': 'internvl_chat', 'InternVLModel': 'internvl_clip',
         'caption_prompt': 'internvl_clip', 'tokenize_texts': 'internvl_clip', 'QLlamaForCausalLM': 'qllama',
         'SentencePieceTokenizer': 'tokenizer', 'TokenizerError': 'tokenizer', 'load_tokenizer': 'tokenizer'}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f'.{_LAZY[name]}', __name__), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = ['ARCH_KEYS', 'ARCH_PRESETS', 'Conversation', 'InternVLChatModel', 'InternVLModel', 'InternViT',
           'QLlamaForCausalLM', 'SentencePieceTokenizer', 'SimpleFeaturePyramid', 'SimpleFPN', 'TEMPLATES',
           'TokenizerError', 'build_on_meta', 'caption_prompt', 'count_parameters', 'get_conv_template',
           'load_tokenizer', 'pixel_shuffle', 'resample_patch_embed', 'resample_pos_embed', 'resolve_arch',
           'tokenize_texts']
