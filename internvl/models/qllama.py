"""QLLaMA, the language middleware of InternVL-C/G: LLaMA with cross-attention from learnable queries
to the vision features, built from transformers' Llama pieces.

Every ``cross_attention_frequency``-th decoder layer (0, f, 2f, ...) adds, after self-attention, a
residual cross-attention from the first ``num_query_token`` positions (the queries) to the vision
tokens; the text positions are untouched by it. In that cross-attention q comes from the RMS-normed
query states (width ``hidden_size``), k and v from the RMS-normed vision tokens: their input width is
the vision width (3200 for InternViT-6B; the original hard-codes 3200 and 96 queries, here both come
from the model). The rotary base is 10000 whatever the config says (hard-coded in the original).

Masks (all additive, so that a row with no visible key stays finite as in the original): causal over
the 2D padding mask; with ``bidirectional_prefix=n`` the first n positions also see each other in both
directions (the queries, when they lead the sequence in a first forward pass). Cross-attention runs
in the first pass only: with a key/value cache the queries' states are already in it.
"""
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn
from transformers import DynamicCache, GenerationMixin, LlamaConfig
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.models.llama.modeling_llama import (LlamaDecoderLayer, LlamaPreTrainedModel, LlamaRMSNorm,
                                                      LlamaRotaryEmbedding)


class QLlamaCrossAttention(nn.Module):
    """Multi-head attention from the query states [B, Q, hidden] to vision tokens [B, N, vision_width]."""

    def __init__(self, config: LlamaConfig, vision_width: int) -> None:
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // self.num_heads
        inner = self.num_heads * self.head_dim
        self.q_proj = nn.Linear(config.hidden_size, inner, bias=False)
        self.o_proj = nn.Linear(inner, config.hidden_size, bias=False)
        self.norm1 = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.k_proj = nn.Linear(vision_width, inner, bias=False)
        self.v_proj = nn.Linear(vision_width, inner, bias=False)
        self.norm2 = LlamaRMSNorm(vision_width, eps=config.rms_norm_eps)

    def forward(self, queries: torch.Tensor, vision: torch.Tensor) -> torch.Tensor:
        b, q_len, _ = queries.shape
        q = self.q_proj(self.norm1(queries)).view(b, q_len, self.num_heads, self.head_dim).transpose(1, 2)
        vision = self.norm2(vision.to(queries.dtype))
        k = self.k_proj(vision).view(b, -1, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(vision).view(b, -1, self.num_heads, self.head_dim).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.o_proj(out.transpose(1, 2).reshape(b, q_len, -1))


class QLlamaDecoderLayer(LlamaDecoderLayer):
    """transformers' Llama layer, plus the queries' cross-attention between self-attention and MLP."""

    def __init__(self, config: LlamaConfig, layer_idx: int, vision_width: int, num_query_token: int,
                 use_cross_attn: bool) -> None:
        super().__init__(config, layer_idx)
        self.num_query_token = num_query_token
        self.cross_attn = QLlamaCrossAttention(config, vision_width) if use_cross_attn else None

    def forward(self, hidden_states: torch.Tensor, attention_mask: Optional[torch.Tensor] = None,
                position_ids: Optional[torch.Tensor] = None, cache: Any = None, use_cache: bool = False,
                position_embeddings: Optional[tuple] = None, vision_hidden_states: Optional[torch.Tensor] = None,
                **kwargs: Any) -> torch.Tensor:
        residual = hidden_states
        attn, _ = self.self_attn(hidden_states=self.input_layernorm(hidden_states), attention_mask=attention_mask,
                                 position_ids=position_ids, cache=cache, use_cache=use_cache,
                                 position_embeddings=position_embeddings, **kwargs)
        hidden_states = residual + attn
        if self.cross_attn is not None and vision_hidden_states is not None:
            n = self.num_query_token
            queries = hidden_states[:, :n]
            queries = queries + self.cross_attn(queries, vision_hidden_states)
            hidden_states = torch.cat([queries, hidden_states[:, n:]], dim=1)
        residual = hidden_states
        return residual + self.mlp(self.post_attention_layernorm(hidden_states))


def qllama_mask(attention_mask: torch.Tensor, q_len: int, dtype: torch.dtype, bidirectional_prefix: int = 0
                ) -> torch.Tensor:
    """2D padding mask [B, K] (K = past + q_len) -> additive [B, 1, q_len, K]: key j is visible from
    query i (at position past + i) when it is not padding and j <= past + i, or when both lie in the
    bidirectional prefix."""
    b, k_len = attention_mask.shape
    past = k_len - q_len
    rows = torch.arange(past, k_len, device=attention_mask.device)[:, None]
    cols = torch.arange(k_len, device=attention_mask.device)[None, :]
    visible = cols <= rows
    if bidirectional_prefix:
        visible = visible | ((rows < bidirectional_prefix) & (cols < bidirectional_prefix))
    visible = visible[None] & attention_mask[:, None, :].bool()
    mask = torch.zeros(b, 1, q_len, k_len, dtype=dtype, device=attention_mask.device)
    return mask.masked_fill(~visible[:, None], torch.finfo(dtype).min)


class QLlamaModel(LlamaPreTrainedModel):
    def __init__(self, config: LlamaConfig, vision_width: int, num_query_token: int,
                 cross_attention_frequency: int) -> None:
        super().__init__(config)
        self.num_query_token = num_query_token
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.layers = nn.ModuleList(
            QLlamaDecoderLayer(config, i, vision_width, num_query_token, i % cross_attention_frequency == 0)
            for i in range(config.num_hidden_layers))
        self.norm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = LlamaRotaryEmbedding(config=config)
        self.post_init()

    def forward(self, input_ids: Optional[torch.Tensor] = None, attention_mask: Optional[torch.Tensor] = None,
                position_ids: Optional[torch.Tensor] = None, cache: Any = None,
                inputs_embeds: Optional[torch.Tensor] = None, use_cache: Optional[bool] = None,
                vision_hidden_states: Optional[torch.Tensor] = None, bidirectional_prefix: int = 0,
                **kwargs: Any) -> BaseModelOutputWithPast:
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        b, q_len = inputs_embeds.shape[:2]
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        past = cache.get_seq_length() if cache is not None else 0
        if attention_mask is None:
            attention_mask = torch.ones(b, past + q_len, dtype=torch.long, device=inputs_embeds.device)
        if position_ids is None:  # as the original: positions count the non-padding tokens
            position_ids = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 1)[:, -q_len:]
        mask = qllama_mask(attention_mask, q_len, inputs_embeds.dtype, bidirectional_prefix if past == 0 else 0)
        position_embeddings = self.rotary_emb(inputs_embeds, position_ids=position_ids)
        vision = vision_hidden_states if past == 0 else None
        hidden = inputs_embeds
        for layer in self.layers:
            hidden = layer(hidden, attention_mask=mask, position_ids=position_ids, cache=cache, use_cache=use_cache,
                           position_embeddings=position_embeddings, vision_hidden_states=vision)
        return BaseModelOutputWithPast(last_hidden_state=self.norm(hidden), cache=cache)


class QLlamaForCausalLM(LlamaPreTrainedModel, GenerationMixin):
    """QLLaMA with its language-model head (captioning by InternVL-G)."""

    def __init__(self, config: LlamaConfig, vision_width: int, num_query_token: int,
                 cross_attention_frequency: int = 2) -> None:
        super().__init__(config)
        self.model = QLlamaModel(config, vision_width, num_query_token, cross_attention_frequency)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.model.embed_tokens

    def forward(self, input_ids: Optional[torch.Tensor] = None, attention_mask: Optional[torch.Tensor] = None,
                position_ids: Optional[torch.Tensor] = None, cache: Any = None,
                inputs_embeds: Optional[torch.Tensor] = None, use_cache: Optional[bool] = None,
                vision_hidden_states: Optional[torch.Tensor] = None, bidirectional_prefix: int = 0,
                **kwargs: Any) -> CausalLMOutputWithPast:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, cache=cache,
                         inputs_embeds=inputs_embeds, use_cache=use_cache,
                         vision_hidden_states=vision_hidden_states, bidirectional_prefix=bidirectional_prefix)
        return CausalLMOutputWithPast(logits=self.lm_head(out.last_hidden_state), cache=out.cache)
