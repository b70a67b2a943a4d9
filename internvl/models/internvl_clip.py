"""InternVL-C / InternVL-G (InternVL-14B: InternViT-6B-224px + QLLaMA) for zero-shot classification,
retrieval and captioning.

- image, InternVL-C: all ViT tokens (cls included, [B, 1 + N, C]) -> attention pooling
  (``clip_projector``: one query, the token mean) -> [B, clip_embed_dim];
- image, InternVL-G: the learnable queries [B, Q, D] run through QLLaMA with bidirectional attention
  among themselves and cross-attention to the ViT tokens, then ``clip_projector2``; the two
  L2-normalised features (C's and this) are summed and returned without renormalising
  (``forward`` normalises);
- text: QLLaMA over the tokens, causal, pad id 0 masked out; the final-norm hidden state at the last
  non-pad position, times ``text_projection`` [D, clip_embed_dim];
- ``forward``: cosine similarities times ``exp(logit_scale)``; ``logits_per_text`` is the transpose.
"""
import logging
import math
import os
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn
from transformers import LlamaConfig

from ..checkpoint import (CheckpointError, arch_from_config, finish_loading, load_canonical, load_module, on_meta,
                          read_model_folder, refuse_unconsumed, take_prefix, to_canonical)
from .intern_vit import InternViT
from .internvl_chat import refuse_no_cache
from .qllama import QLlamaForCausalLM

logger = logging.getLogger(__name__)

MODES = ('InternVL-C', 'InternVL-G')
# What an InternVL-14B folder holds besides the vision tower (any other key is refused by name).
MODULES = ('qllama', 'clip_projector', 'clip_projector2', 'itm_head')
PARAMETERS = ('query_tokens', 'text_projection', 'logit_scale')
PARTS = tuple(f'{m}.' for m in MODULES) + PARAMETERS
_LLAMA_META_KEYS = ('architectures', 'auto_map', 'model_type', 'transformers_version', '_name_or_path',
                    'torch_dtype', 'dtype', 'rope_scaling', 'rope_theta', 'rope_parameters', 'num_query_token',
                    'cross_attention_frequency')


class PoolingCrossAttention(nn.Module):
    """Multi-head attention with separate q/k/v biases (the original's ``CrossAttention``)."""

    def __init__(self, dim: int, num_heads: int, out_dim: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q, self.k, self.v = (nn.Linear(dim, dim, bias=False) for _ in range(3))
        self.q_bias, self.k_bias, self.v_bias = (nn.Parameter(torch.zeros(dim)) for _ in range(3))
        self.proj = nn.Linear(dim, out_dim)

    def forward(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        def heads(t: torch.Tensor, layer: nn.Linear, bias: torch.Tensor) -> torch.Tensor:
            return F.linear(t, layer.weight, bias).unflatten(-1, (self.num_heads, -1)).transpose(1, 2)
        out = F.scaled_dot_product_attention(heads(x, self.q, self.q_bias), heads(k, self.k, self.k_bias),
                                             heads(v, self.v, self.v_bias))
        return self.proj(out.transpose(1, 2).flatten(2))


class AttentionPooling(nn.Module):
    """Tokens [B, N, dim] -> [B, out_dim]: the token mean attends to the tokens (LayerNorms eps 1e-5)."""

    def __init__(self, dim: int, num_heads: int, out_dim: int) -> None:
        super().__init__()
        self.norm1_q, self.norm1_k, self.norm1_v = (nn.LayerNorm(dim, eps=1e-5) for _ in range(3))
        self.cross_attn = PoolingCrossAttention(dim, num_heads, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        query = self.norm1_q(x.mean(1, keepdim=True))
        return self.cross_attn(query, self.norm1_k(x), self.norm1_v(x)).squeeze(1)


def qllama_config(config: dict) -> LlamaConfig:
    """``qllama_config`` of config.json -> LlamaConfig with the original's fixed rotary base 10000."""
    kwargs = {k: v for k, v in config.items() if k not in _LLAMA_META_KEYS}
    kwargs['rope_parameters'] = {'rope_type': 'default', 'rope_theta': 10000.0}
    llama = LlamaConfig(**kwargs)
    llama._attn_implementation = 'sdpa'
    return llama


class InternVLModel(nn.Module):
    """InternVL-14B with the original's API (``encode_image``, ``encode_text``, ``forward``, ``generate``).

    Args:
        vision_arch: InternViT arch (InternViT-6B-224px for the published model).
        llama_config: QLLaMA's LlamaConfig.
        clip_embed_dim: width of the joint embedding (768).
        attn_pool_num_heads: heads of the two attention-pooling projectors (16).
        num_query_token: learnable queries (96).
        cross_attention_frequency: a cross-attention in every this-many QLLaMA layers (2).
    """

    def __init__(self, vision_arch: str | dict, llama_config: LlamaConfig, clip_embed_dim: int = 768,
                 attn_pool_num_heads: int = 16, num_query_token: int = 96, cross_attention_frequency: int = 2) -> None:
        super().__init__()
        self.vision_model = InternViT(vision_arch)
        width, text_width = self.vision_model.embed_dims, llama_config.hidden_size
        self.num_query_token = num_query_token
        self.qllama = QLlamaForCausalLM(llama_config, width, num_query_token, cross_attention_frequency)
        self.query_tokens = nn.Parameter(torch.randn(1, num_query_token, text_width) * 0.02)
        self.text_projection = nn.Parameter(torch.randn(text_width, clip_embed_dim) * text_width ** -0.5)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.clip_projector = AttentionPooling(width, attn_pool_num_heads, clip_embed_dim)
        self.clip_projector2 = AttentionPooling(text_width, attn_pool_num_heads, clip_embed_dim)
        self.itm_head = nn.Linear(text_width, 2)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, torch_dtype: Optional[torch.dtype] = None,
                        **kwargs: Any) -> 'InternVLModel':
        """Load an InternVL-14B folder (config.json with ``qllama_config``; ``vision_model.*``, ``qllama.*``,
        the projectors, ``query_tokens``, ``text_projection``, ``logit_scale``)."""
        dtype = kwargs.pop('dtype', torch_dtype)
        for ignored in ('trust_remote_code', 'low_cpu_mem_usage'):
            kwargs.pop(ignored, None)
        if kwargs:
            raise TypeError(f'unexpected arguments: {sorted(kwargs)}')
        source = str(path)
        config, state_dict = read_model_folder(path)
        if 'qllama_config' not in config:
            raise CheckpointError(f'{source}: not an InternVL-C/G (InternVL-14B) folder: config.json has model_type '
                                  f'{config.get("model_type")!r} and no qllama_config')
        frequency = config.get('cross_attention_frequency', 2)
        stated = config['qllama_config'].get('cross_attention_frequency', frequency)
        if stated != frequency:  # the original's config class sets it from the top level (default 2)
            logger.warning('%s: qllama_config.cross_attention_frequency=%s is ignored, as by the original; '
                           'using %s', source, stated, frequency)
        with on_meta():
            model = cls(arch_from_config(config, source), qllama_config(config['qllama_config']),
                        clip_embed_dim=config.get('clip_embed_dim', 768),
                        attn_pool_num_heads=config.get('attn_pool_num_heads', 16),
                        num_query_token=config.get('num_query_token', 96), cross_attention_frequency=frequency)
        vision = to_canonical(state_dict, {}, source)
        outside = set(vision.ignored)
        rest = {k: v for k, v in state_dict.items() if k in outside
                and not k.endswith('rotary_emb.inv_freq')}  # inv_freq: a buffer some old checkpoints saved
        refuse_unconsumed(rest, PARTS, source)
        load_canonical(model.vision_model, vision, None, source, strict=True, assign=True)
        others = {k: v for k, v in model.state_dict().items() if not k.startswith('vision_model.')}
        for name in MODULES:
            load_module(getattr(model, name), take_prefix(rest, name + '.'), f'{source} ({name})')
        for name in PARAMETERS:
            if name not in rest:
                raise CheckpointError(f'{source}: missing {name}')
            if tuple(rest[name].shape) != tuple(others[name].shape):
                raise CheckpointError(f'{source}: {name} has shape {list(rest[name].shape)}, the model expects '
                                      f'{list(others[name].shape)}')
            setattr(model, name, nn.Parameter(rest[name]))
        return finish_loading(model, dtype)

    # --- features -----------------------------------------------------------------------------

    def vision_tokens(self, image: torch.Tensor) -> torch.Tensor:
        """Images [B, 3, 224, 224] -> every ViT token of the last block [B, 1 + N, C]."""
        vit = self.vision_model
        x, grid = vit.embed(image.to(vit.pos_embed.dtype))
        return vit.run_blocks(x, grid, 0, vit.num_layers)

    def query_features(self, vision_tokens: torch.Tensor) -> torch.Tensor:
        """The learnable queries after QLLaMA (bidirectional among themselves, reading the image)."""
        queries = self.query_tokens.expand(vision_tokens.shape[0], -1, -1)
        mask = torch.ones(queries.shape[:2], dtype=torch.long, device=queries.device)
        return self.qllama.model(inputs_embeds=queries, attention_mask=mask, vision_hidden_states=vision_tokens,
                                 bidirectional_prefix=self.num_query_token).last_hidden_state

    def encode_image(self, image: torch.Tensor, mode: str = 'InternVL-C') -> torch.Tensor:
        _check_mode(mode)
        tokens = self.vision_tokens(image)
        pooled = self.clip_projector(tokens)
        if mode == 'InternVL-C':
            return pooled
        queries = self.clip_projector2(self.query_features(tokens))
        return F.normalize(pooled, dim=-1) + F.normalize(queries, dim=-1)

    def encode_text(self, text: torch.Tensor) -> torch.Tensor:
        """Token ids [B, L] (pad id 0, right padding) -> text features [B, clip_embed_dim]."""
        mask = text > 0
        if not mask.any(dim=1).all():
            raise ValueError('encode_text: a text has no token other than padding (id 0)')
        hidden = self.qllama.model(input_ids=text, attention_mask=mask.long()).last_hidden_state
        last = hidden[torch.arange(text.shape[0], device=text.device), mask.sum(1) - 1]
        return last @ self.text_projection

    def forward(self, image: torch.Tensor, text: torch.Tensor, mode: str = 'InternVL-C'
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits_per_image [B_img, B_txt], logits_per_text = its transpose)."""
        image_features = F.normalize(self.encode_image(image, mode), dim=-1)
        text_features = F.normalize(self.encode_text(text), dim=-1)
        logits_per_image = self.logit_scale.exp() * image_features @ text_features.t()
        return logits_per_image, logits_per_image.t()

    @torch.no_grad()
    def generate(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 generation_config: Any = None, **kwargs: Any) -> torch.Tensor:
        """Captions (InternVL-G): the queries lead the prompt with their own bidirectional attention and
        read the image in the first pass; returns the generated tokens."""
        refuse_no_cache(kwargs)
        tokens = self.vision_tokens(pixel_values)
        queries = self.query_tokens.expand(tokens.shape[0], -1, -1)
        embeds = torch.cat([queries, self.qllama.get_input_embeddings()(input_ids)], dim=1)
        mask = torch.cat([torch.ones(queries.shape[:2], dtype=attention_mask.dtype, device=attention_mask.device),
                          attention_mask], dim=1)
        return self.qllama.generate(inputs_embeds=embeds, attention_mask=mask, vision_hidden_states=tokens,
                                    bidirectional_prefix=self.num_query_token, generation_config=generation_config,
                                    **kwargs)


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f'mode={mode!r}; expected one of {list(MODES)}')


def tokenize_texts(tokenizer: Any, texts: list[str], max_length: int = 80, prefix: str = 'summarize:'
                   ) -> torch.Tensor:
    """Texts -> ids [B, max_length] as the seed's recipe gives them with the original's slow Llama
    tokenizer (``add_eos_token=True``, ``truncation``, ``padding='max_length'``, pad id 0):
    ``[bos] + tokens(prefix + text)[:max_length - 2] + [eos]``, then zeros. Built explicitly because
    fast tokenizers (transformers 5) do not all honour ``add_eos_token``."""
    if not texts:
        raise ValueError('tokenize_texts: no texts given')
    rows = []
    for text in texts:
        tokens = tokenizer(prefix + text, add_special_tokens=False)['input_ids'][:max_length - 2]
        ids = [tokenizer.bos_token_id] + tokens + [tokenizer.eos_token_id]
        rows.append(ids + [0] * (max_length - len(ids)))
    return torch.tensor(rows, dtype=torch.long)


def caption_prompt(tokenizer: Any, prompt: str = 'English caption:') -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) of the caption prompt: ``[bos] + tokens``, no eos (the seed sets
    ``add_eos_token = False`` for generation)."""
    ids = torch.tensor([[tokenizer.bos_token_id] + tokenizer(prompt, add_special_tokens=False)['input_ids']])
    return ids, torch.ones_like(ids)
