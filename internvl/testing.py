"""Tiny random InternVL folders in the published layouts, for tests, benchmarks and tool demos.

Everything is built locally (no downloads): tokenizers trained on a few sentences with the chat
models' special tokens, in the layout of each published folder (``tokenizer.json`` for the native and
Qwen2 / Llama / Phi-3 folders; InternLM2's and InternVL-14B's sentencepiece ``tokenizer.model`` with
their ``tokenizer_config.json``), and model folders written the way their owners write them -
transformers' ``save_pretrained`` for the native layout, OpenGVLab's key names for the remote-code
layout (``vision_model.embeddings.*``, ``vision_model.encoder.layers.*``, ``mlp1.*``,
``language_model.*``; InternLM2 with its packed ``wqkv``).
"""
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

SPECIAL_TOKENS = ['<unk>', '<s>', '</s>', '<pad>', '<|im_start|>', '<|im_end|>', '<img>', '</img>', '<IMG_CONTEXT>',
                  '<|system|>', '<|user|>', '<|assistant|>', '<|end|>']
CORPUS = ['a photo of a red panda', 'a photo of a cat', 'two dogs on the grass', 'describe the image in detail',
          'what is in the picture', 'English caption: a bird on a branch', 'summarize: a photo of a car',
          'the quick brown fox jumps over the lazy dog'] * 4

# InternLM2's sentencepiece model holds its chat tokens; InternVL adds its image tokens after the vocabulary
IN_VOCAB_SPECIAL = ['<|im_start|>', '<|im_end|>']
SENTENCEPIECE_CORPUS = CORPUS + ['你好，世界', '这是一只猫', 'line one\nline  two', '  leading spaces', 'emoji 🙂 here']

TINY_VISION = dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=256,
                   image_size=56, patch_size=14)


def make_tokenizer(path: str | os.PathLike, add_eos_token: bool = False) -> Any:
    """A byte-level BPE tokenizer with the chat special tokens, saved to ``path``; returns it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast
    tok = Tokenizer(models.BPE(unk_token='<unk>'))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    eos = ' </s>:0' if add_eos_token else ''
    tok.post_processor = processors.TemplateProcessing(
        single='<s>:0 $A:0' + eos, pair='<s>:0 $A:0 $B:1', special_tokens=[('<s>', 1), ('</s>', 2)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token='<s>', eos_token='</s>', unk_token='<unk>',
                                        pad_token='<pad>')
    tokenizer.save_pretrained(path)
    return tokenizer


def make_sentencepiece_tokenizer(path: str | os.PathLike, tokenizer_class: str = 'InternLM2Tokenizer',
                                 add_eos_token: bool = False) -> Any:
    """A sentencepiece ``tokenizer.model`` with ``tokenizer_config.json`` as the published InternLM2
    (``tokenizer_class`` 'InternLM2Tokenizer', with its ``auto_map`` into remote code) and InternVL-14B
    ('LlamaTokenizer') folders ship them, no ``tokenizer.json``; returns it as ``load_tokenizer`` reads it.

    The model is byte-fallback BPE with unk / bos / eos ids 0 / 1 / 2, sentencepiece's dummy prefix,
    and no whitespace normalisation (leading and double spaces and newlines are kept, as InternLM2's)."""
    import io

    import sentencepiece as spm
    from .models.tokenizer import load_tokenizer
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(SENTENCEPIECE_CORPUS), model_writer=model, vocab_size=360, model_type='bpe',
        byte_fallback=True, character_coverage=1.0, normalization_rule_name='identity',
        remove_extra_whitespaces=False, user_defined_symbols=IN_VOCAB_SPECIAL, unk_id=0, bos_id=1, eos_id=2,
        pad_id=-1, hard_vocab_limit=False, minloglevel=2)
    (path / 'tokenizer.model').write_bytes(model.getvalue())
    vocab = spm.SentencePieceProcessor(model_proto=model.getvalue())
    added = [t for t in SPECIAL_TOKENS if vocab.piece_to_id(t) == vocab.unk_id() and t != '<unk>']
    ids = {t: vocab.piece_to_id(t) for t in ('<unk>', '<s>', '</s>', *IN_VOCAB_SPECIAL)}
    ids.update({t: vocab.get_piece_size() + i for i, t in enumerate(added)})
    config = dict(tokenizer_class=tokenizer_class, add_bos_token=True, add_eos_token=add_eos_token,
                  bos_token='<s>', eos_token='</s>', unk_token='<unk>', clean_up_tokenization_spaces=False,
                  added_tokens_decoder={str(i): dict(content=t, lstrip=False, rstrip=False, normalized=False,
                                                     single_word=False, special=True) for t, i in ids.items()},
                  additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in ('<unk>', '<s>', '</s>')])
    if tokenizer_class == 'InternLM2Tokenizer':
        config.update(pad_token='</s>', auto_map={'AutoTokenizer': ['tokenization_internlm2.InternLM2Tokenizer', None]})
    else:
        config.update(pad_token='<pad>', legacy=True)
    (path / 'tokenizer_config.json').write_text(json.dumps(config, indent=2, ensure_ascii=False))
    return load_tokenizer(path)


def _text_config(kind: str, vocab: int, hidden: int, layers: int) -> dict:
    common = dict(vocab_size=vocab, hidden_size=hidden, intermediate_size=hidden * 3, num_hidden_layers=layers,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, rms_norm_eps=1e-6,
                  bos_token_id=1, eos_token_id=2, pad_token_id=3, tie_word_embeddings=False)
    return {'qwen2': dict(common, model_type='qwen2', architectures=['Qwen2ForCausalLM']),
            'llama': dict(common, model_type='llama', architectures=['LlamaForCausalLM']),
            'phi3': dict(common, model_type='phi3', architectures=['Phi3ForCausalLM'])}[kind]


def make_native_chat_folder(path: str | os.PathLike, llm: str = 'qwen2', hidden: int = 64, layers: int = 2,
                            vision: dict = TINY_VISION, seed: int = 0) -> Any:
    """A transformers-native InternVL-Chat folder (``InternVLForConditionalGeneration.save_pretrained``)
    with its tokenizer; returns the transformers model (eval mode)."""
    from transformers import InternVLConfig, InternVLForConditionalGeneration
    path = Path(path)
    tokenizer = make_tokenizer(path)
    vision_config = dict(vision, model_type='internvl_vision', norm_type='rms_norm', use_qk_norm=True,
                         attention_bias=False, layer_scale_init_value=0.1, use_mean_pooling=True)
    config = InternVLConfig(vision_config=vision_config, text_config=_text_config(llm, len(tokenizer), hidden, layers),
                            image_token_id=tokenizer.convert_tokens_to_ids('<IMG_CONTEXT>'),
                            downsample_ratio=0.5, tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = InternVLForConditionalGeneration(config).eval()
    with torch.no_grad():  # random layer scales and norms, so that every weight matters
        for name, p in model.named_parameters():
            if 'lambda' in name or 'norm' in name:
                p.uniform_(0.5, 1.5)
    model.save_pretrained(path)
    return model


def to_opengvlab_vision(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our InternViT keys -> OpenGVLab's InternVisionModel keys (``vision_model.`` prefix added)."""
    out = {}
    for key, value in state_dict.items():
        key = (key.replace('cls_token', 'embeddings.class_embedding')
               .replace('pos_embed', 'embeddings.position_embedding')
               .replace('patch_embed.proj', 'embeddings.patch_embedding')
               .replace('blocks.', 'encoder.layers.').replace('.ls1.gamma', '.ls1').replace('.ls2.gamma', '.ls2'))
        out['vision_model.' + key] = value
    return out


def pack_internlm2(state_dict: dict[str, torch.Tensor], heads: int, kv_heads: int) -> dict[str, torch.Tensor]:
    """Llama weights -> InternLM2 names, with q/k/v packed into ``wqkv`` (the inverse of the loader's
    conversion, for writing InternLM2 fixtures)."""
    out = {}
    for key, value in state_dict.items():
        if '.self_attn.k_proj.' in key or '.self_attn.v_proj.' in key:
            continue
        if '.self_attn.q_proj.' in key:
            q, k, v = (state_dict[key.replace('q_proj', n)] for n in ('q_proj', 'k_proj', 'v_proj'))
            head_dim = q.shape[0] // heads
            packed = torch.cat([q.reshape(kv_heads, heads // kv_heads, head_dim, -1),
                                k.reshape(kv_heads, 1, head_dim, -1), v.reshape(kv_heads, 1, head_dim, -1)], dim=1)
            out[key.replace('.self_attn.q_proj.', '.attention.wqkv.')] = packed.reshape(-1, q.shape[1])
            continue
        for old, new in [('model.embed_tokens.', 'model.tok_embeddings.'), ('lm_head.', 'output.'),
                         ('.self_attn.o_proj.', '.attention.wo.'), ('.mlp.gate_proj.', '.feed_forward.w1.'),
                         ('.mlp.up_proj.', '.feed_forward.w3.'), ('.mlp.down_proj.', '.feed_forward.w2.'),
                         ('.input_layernorm.', '.attention_norm.'),
                         ('.post_attention_layernorm.', '.ffn_norm.')]:
            if old in key:
                key = key.replace(old, new, 1)
                break
        out[key] = value
    return out


def make_opengvlab_chat_folder(path: str | os.PathLike, llm: str = 'internlm2', template: str = 'internlm2-chat',
                               hidden: int = 64, layers: int = 2, ps_version: str = 'v2', select_layer: int = -1,
                               rope_scaling: dict | None = None, seed: int = 0) -> dict[str, torch.Tensor]:
    """An OpenGVLab remote-code InternVL-Chat folder (config.json with ``llm_config``, one safetensors
    file, tokenizer); returns its state dict in our model's names (vision canonical, LM as Llama/...)."""
    from .models.internvl_chat import InternVLChatModel
    from .models.language_model import language_model_config
    path = Path(path)
    tokenizer = make_sentencepiece_tokenizer(path) if llm == 'internlm2' else make_tokenizer(path)
    base = 'llama' if llm == 'internlm2' else llm
    text = _text_config(base, len(tokenizer), hidden, layers)
    if llm == 'internlm2':
        text = dict(text, model_type='internlm2', architectures=['InternLM2ForCausalLM'], bias=False,
                    rope_theta=10000.0, rope_scaling=rope_scaling)
    vision = dict(TINY_VISION, qkv_bias=False, qk_normalization=True, norm_type='rms_norm', initializer_factor=0.1)
    config = dict(model_type='internvl_chat', architectures=['InternVLChatModel'], vision_config=vision,
                  llm_config=text, template=template, downsample_ratio=0.5, ps_version=ps_version,
                  select_layer=select_layer, force_image_size=vision['image_size'])
    torch.manual_seed(seed)
    llm_arch, llm_config = language_model_config(text, str(path))
    model = InternVLChatModel(config_vision_arch(vision), llm_arch, llm_config, template=template,
                              ps_version=ps_version, select_layer=select_layer)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'norm' in name or 'gamma' in name:
                p.uniform_(0.5, 1.5)
    ours = model.state_dict()
    weights = to_opengvlab_vision(model.vision_model.state_dict())
    weights.update({'mlp1.' + k: v for k, v in model.mlp1.state_dict().items()})
    lm = model.language_model.state_dict()
    if llm == 'internlm2':
        lm = pack_internlm2(lm, llm_config.num_attention_heads, llm_config.num_key_value_heads)
    weights.update({'language_model.' + k: v for k, v in lm.items()})
    save_file({k: v.contiguous() for k, v in weights.items()}, str(path / 'model.safetensors'))
    (path / 'config.json').write_text(json.dumps(config, indent=2))
    return ours


def config_vision_arch(vision: dict) -> dict:
    from .checkpoint.formats import arch_from_config
    return arch_from_config({'vision_config': vision}, 'tiny vision config')


def make_clip_folder(path: str | os.PathLike, hidden: int = 64, layers: int = 2, num_query_token: int = 4,
                     clip_embed_dim: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    """An InternVL-14B-layout folder (InternVL-C/G) with its sentencepiece ``LlamaTokenizer`` that
    appends eos (as the seed's ``add_eos_token=True``); returns our model's state dict."""
    from .models.internvl_clip import InternVLModel, qllama_config
    path = Path(path)
    tokenizer = make_sentencepiece_tokenizer(path, 'LlamaTokenizer', add_eos_token=True)
    vision = dict(TINY_VISION, image_size=28, qkv_bias=False, qk_normalization=True, norm_type='rms_norm',
                  initializer_factor=0.1)
    qllama = dict(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 3,
                  num_hidden_layers=layers, num_attention_heads=4, max_position_embeddings=128, rms_norm_eps=1e-6,
                  pad_token_id=0, bos_token_id=1, eos_token_id=2, architectures=['LlamaForCausalLM'])
    config = dict(model_type='internvl', architectures=['InternVLModel'], vision_config=vision, qllama_config=qllama,
                  clip_embed_dim=clip_embed_dim, attn_pool_num_heads=4, num_query_token=num_query_token)
    torch.manual_seed(seed)
    model = InternVLModel(config_vision_arch(vision), qllama_config(qllama), clip_embed_dim=clip_embed_dim,
                          attn_pool_num_heads=4, num_query_token=num_query_token)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'norm' in name or 'gamma' in name:
                p.uniform_(0.5, 1.5)
            elif name.endswith('bias'):
                p.normal_(0, 0.1)
    ours = model.state_dict()
    weights = to_opengvlab_vision(model.vision_model.state_dict())
    weights.update({k: v for k, v in ours.items() if not k.startswith('vision_model.')})
    save_file({k: v.contiguous() for k, v in weights.items()}, str(path / 'model.safetensors'))
    (path / 'config.json').write_text(json.dumps(config, indent=2))
    return ours
