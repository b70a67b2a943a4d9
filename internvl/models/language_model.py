"""The language models of InternVL-Chat, built from transformers' own classes (no remote code).

``llm_config`` of a remote-code checkpoint names the architecture. Llama, Qwen2 and Phi-3 checkpoints
already use transformers' parameter names. InternLM2 has no class in transformers; its weights are
converted on load to ``LlamaForCausalLM``, which computes the same function:

- ``attention.wqkv`` packs, per key/value head, its ``groups = heads / kv_heads`` query heads, then
  the key head, then the value head: rows ``[kv_heads, groups + 2, head_dim]``. Query head
  ``h * groups + g`` uses key/value head ``h``, which is Llama's grouped-query order, so the split is
  a reshape: q = ``[:, :groups]``, k = ``[:, -2]``, v = ``[:, -1]``;
- ``attention.wo`` -> ``self_attn.o_proj``; ``feed_forward.w1 / w3 / w2`` -> ``mlp.gate / up / down_proj``;
  ``attention_norm`` / ``ffn_norm`` -> ``input_layernorm`` / ``post_attention_layernorm``;
  ``tok_embeddings`` -> ``embed_tokens``; ``output`` -> ``lm_head``;
- the rotary embedding is Llama's (rotate-half, ``rope_theta``), and ``rope_scaling``
  ``{"type": "dynamic", "factor": f}`` is transformers' ``dynamic`` NTK rope with the same formula:
  past ``max_position_embeddings`` the base becomes ``theta * (f * len / max - (f - 1)) ** (d / (d - 2))``.
"""
import logging
import torch
from transformers import (LlamaConfig, LlamaForCausalLM, Phi3Config, Phi3ForCausalLM, PreTrainedConfig,
                          PreTrainedModel, Qwen2Config, Qwen2ForCausalLM)

from ..checkpoint.io import CheckpointError

logger = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]

# architecture in config.json -> (config class, model class)
ARCHITECTURES: dict[str, tuple[type, type]] = {
    'LlamaForCausalLM': (LlamaConfig, LlamaForCausalLM),
    'Qwen2ForCausalLM': (Qwen2Config, Qwen2ForCausalLM),
    'Phi3ForCausalLM': (Phi3Config, Phi3ForCausalLM),
    'InternLM2ForCausalLM': (LlamaConfig, LlamaForCausalLM),  # converted, see the module docstring
}
MODEL_TYPES = {'llama': 'LlamaForCausalLM', 'qwen2': 'Qwen2ForCausalLM', 'phi3': 'Phi3ForCausalLM',
               'internlm2': 'InternLM2ForCausalLM'}
# keys of a saved config that describe the file, not the model
_META_KEYS = ('architectures', 'auto_map', 'model_type', 'transformers_version', '_name_or_path', 'torch_dtype',
              'dtype', 'attn_implementation')


def architecture_of(llm_config: dict, source: str) -> str:
    """The language model's architecture name, from ``architectures`` or ``model_type``."""
    names = llm_config.get('architectures') or [MODEL_TYPES.get(llm_config.get('model_type'), '')]
    name = names[0]
    if name not in ARCHITECTURES:
        raise CheckpointError(f'{source}: language model {name or llm_config.get("model_type")!r} is not supported; '
                              f'expected one of {sorted(ARCHITECTURES)}')
    return name


def internlm2_to_llama_config(cfg: dict) -> LlamaConfig:
    """InternLM2's config.json -> the equivalent ``LlamaConfig`` (rope scaling carried over)."""
    rope = {'rope_type': 'default', 'rope_theta': float(cfg.get('rope_theta', 10000.0))}
    scaling = cfg.get('rope_scaling')
    if scaling:
        kind = scaling.get('type', scaling.get('rope_type'))
        if kind not in ('dynamic', 'linear'):
            raise CheckpointError(f'InternLM2 rope_scaling type {kind!r} is not supported (dynamic or linear)')
        rope.update(rope_type=kind, factor=float(scaling['factor']))
    return LlamaConfig(
        vocab_size=cfg['vocab_size'], hidden_size=cfg['hidden_size'], intermediate_size=cfg['intermediate_size'],
        num_hidden_layers=cfg['num_hidden_layers'], num_attention_heads=cfg['num_attention_heads'],
        num_key_value_heads=cfg.get('num_key_value_heads', cfg['num_attention_heads']),
        hidden_act=cfg.get('hidden_act', 'silu'), max_position_embeddings=cfg.get('max_position_embeddings', 2048),
        rms_norm_eps=cfg.get('rms_norm_eps', 1e-6), rope_parameters=rope, attention_bias=bool(cfg.get('bias', False)),
        mlp_bias=False, tie_word_embeddings=bool(cfg.get('tie_word_embeddings', False)),
        pad_token_id=cfg.get('pad_token_id'), bos_token_id=cfg.get('bos_token_id', 1),
        eos_token_id=cfg.get('eos_token_id', 2))


def language_model_config(llm_config: dict | PreTrainedConfig, source: str) -> tuple[str, PreTrainedConfig]:
    """``llm_config`` of a checkpoint -> (architecture name, transformers config of the class we build)."""
    if isinstance(llm_config, PreTrainedConfig):
        llm_config = llm_config.to_dict()
    arch = architecture_of(llm_config, source)
    if arch == 'InternLM2ForCausalLM':
        return arch, internlm2_to_llama_config(llm_config)
    config_cls = ARCHITECTURES[arch][0]
    kwargs = {k: v for k, v in llm_config.items() if k not in _META_KEYS}
    return arch, config_cls(**kwargs)


def build_language_model(arch: str, config: PreTrainedConfig) -> PreTrainedModel:
    config._attn_implementation = 'sdpa'
    return ARCHITECTURES[arch][1](config)


def convert_internlm2(state_dict: StateDict, config: LlamaConfig) -> StateDict:
    """InternLM2 weights (without the ``language_model.`` prefix) -> ``LlamaForCausalLM`` names."""
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    head_dim = config.hidden_size // heads
    groups = heads // kv_heads
    renames = [('model.tok_embeddings.', 'model.embed_tokens.'), ('output.', 'lm_head.'),
               ('.attention.wo.', '.self_attn.o_proj.'), ('.feed_forward.w1.', '.mlp.gate_proj.'),
               ('.feed_forward.w3.', '.mlp.up_proj.'), ('.feed_forward.w2.', '.mlp.down_proj.'),
               ('.attention_norm.', '.input_layernorm.'), ('.ffn_norm.', '.post_attention_layernorm.')]
    out: StateDict = {}
    for key, value in state_dict.items():
        if '.attention.wqkv.' in key:
            kind = key.rsplit('.', 1)[1]  # weight or bias
            packed = value.reshape(kv_heads, groups + 2, head_dim, *value.shape[1:])
            base = key.split('.attention.wqkv.')[0] + '.self_attn.'
            out[f'{base}q_proj.{kind}'] = packed[:, :groups].reshape(heads * head_dim, *value.shape[1:])
            out[f'{base}k_proj.{kind}'] = packed[:, -2].reshape(kv_heads * head_dim, *value.shape[1:])
            out[f'{base}v_proj.{kind}'] = packed[:, -1].reshape(kv_heads * head_dim, *value.shape[1:])
            continue
        if key.endswith('rotary_emb.inv_freq'):
            continue
        for old, new in renames:
            if key.startswith(old) or old.startswith('.') and old in key:
                key = key.replace(old, new, 1)
                break
        out[key] = value
    return out

