"""InternVL-C / InternVL-G: QLLaMA and the attention pooling against reference computations written here
from the original's description, the logit conventions, tokenisation and captioning."""
import json
import logging
import math

import pytest
import torch
import torch.nn.functional as F

from internvl.checkpoint import CheckpointError
from internvl.models import InternVLModel, caption_prompt, load_tokenizer, tokenize_texts
from internvl.testing import make_clip_folder, make_native_chat_folder

NQ, HEADS = 4, 4


@pytest.fixture(scope='module')
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp('clip')
    expected = make_clip_folder(path, num_query_token=NQ)
    return InternVLModel.from_pretrained(path), load_tokenizer(path), expected, path


def rms(x, weight, eps=1e-6):
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def attend(q, k, v, mask=None):
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores + mask
    return scores.softmax(-1) @ v


def split(x, heads=HEADS):
    return x.view(x.shape[0], x.shape[1], heads, -1).transpose(1, 2)


def merge(x):
    return x.transpose(1, 2).flatten(2)


def reference_qllama(sd, embeds, mask, vision=None, frequency=2):
    """QLLaMA's final-norm hidden states: Llama layers (rope base 10000, positions 0..n-1, additive
    ``mask``), and after self-attention in layers 0, f, 2f, ... a residual cross-attention of the first
    NQ positions to the RMS-normed ``vision`` tokens."""
    n = embeds.shape[1]
    d = embeds.shape[-1] // HEADS
    inv_freq = 1.0 / (10000 ** (torch.arange(0, d, 2).float() / d))
    freqs = torch.outer(torch.arange(n).float(), inv_freq)
    cos, sin = torch.cat([freqs, freqs], -1).cos(), torch.cat([freqs, freqs], -1).sin()

    def rope(t):
        return t * cos + torch.cat([-t[..., d // 2:], t[..., :d // 2]], -1) * sin
    h = embeds
    layers = 1 + max(int(k.split('.')[2]) for k in sd if k.startswith('model.layers.'))
    for i in range(layers):
        w = {k[len(f'model.layers.{i}.'):]: v for k, v in sd.items() if k.startswith(f'model.layers.{i}.')}
        x = rms(h, w['input_layernorm.weight'])
        q, k, v = (split(x @ w[f'self_attn.{n_}_proj.weight'].t()) for n_ in 'qkv')
        h = h + merge(attend(rope(q), rope(k), v, mask)) @ w['self_attn.o_proj.weight'].t()
        if i % frequency == 0 and vision is not None:
            queries = h[:, :NQ]
            qn, vn = rms(queries, w['cross_attn.norm1.weight']), rms(vision, w['cross_attn.norm2.weight'])
            out = attend(split(qn @ w['cross_attn.q_proj.weight'].t()), split(vn @ w['cross_attn.k_proj.weight'].t()),
                         split(vn @ w['cross_attn.v_proj.weight'].t()))
            h = torch.cat([queries + merge(out) @ w['cross_attn.o_proj.weight'].t(), h[:, NQ:]], dim=1)
        x = rms(h, w['post_attention_layernorm.weight'])
        h = h + (F.silu(x @ w['mlp.gate_proj.weight'].t()) * (x @ w['mlp.up_proj.weight'].t())) @ w['mlp.down_proj.weight'].t()
    return rms(h, sd['model.norm.weight'])


def reference_pooling(sd, prefix, x):
    """The original's AttentionPoolingBlock: the token mean attends to the tokens (LayerNorm eps 1e-5,
    separate q/k/v biases)."""
    def ln(t, name):
        return F.layer_norm(t, t.shape[-1:], sd[f'{prefix}.{name}.weight'], sd[f'{prefix}.{name}.bias'], 1e-5)
    a = f'{prefix}.cross_attn'
    q = split(ln(x.mean(1, keepdim=True), 'norm1_q') @ sd[f'{a}.q.weight'].t() + sd[f'{a}.q_bias'])
    k = split(ln(x, 'norm1_k') @ sd[f'{a}.k.weight'].t() + sd[f'{a}.k_bias'])
    v = split(ln(x, 'norm1_v') @ sd[f'{a}.v.weight'].t() + sd[f'{a}.v_bias'])
    return (merge(attend(q, k, v)) @ sd[f'{a}.proj.weight'].t() + sd[f'{a}.proj.bias']).squeeze(1)


def additive(visible):
    return torch.zeros(visible.shape).masked_fill(~visible, torch.finfo(torch.float32).min)[:, None]


def test_loads_every_weight(clip):
    model, _, expected, _ = clip
    state = model.state_dict()
    assert set(state) == set(expected)
    assert all(torch.equal(state[k], v) for k, v in expected.items())


def test_text_feature_is_the_last_non_pad_hidden_state(clip):
    model, tokenizer, sd, _ = clip
    ids = tokenize_texts(tokenizer, ['a photo of a cat', 'two dogs on the grass in the picture'], max_length=16)
    qllama = {k[len('qllama.'):]: v for k, v in sd.items() if k.startswith('qllama.')}
    embeds = qllama['model.embed_tokens.weight'][ids]
    pad = ids > 0
    causal = torch.ones(16, 16, dtype=torch.bool).tril()
    hidden = reference_qllama(qllama, embeds, additive(causal[None] & pad[:, None, :]))
    last = pad.sum(1) - 1
    expected = hidden[torch.arange(2), last] @ sd['text_projection']
    with torch.no_grad():
        assert torch.allclose(model.encode_text(ids), expected, atol=1e-5)
        longer = torch.cat([ids, torch.zeros(2, 5, dtype=torch.long)], dim=1)  # more padding: same features
        assert torch.allclose(model.encode_text(longer), expected, atol=1e-5)


def test_image_features_of_both_modes_match_the_reference(clip):
    model, _, sd, _ = clip
    image = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        tokens = model.vision_tokens(image)
        assert tokens.shape == (2, 1 + 4, 64)  # the cls token is pooled too
        pooled = reference_pooling(sd, 'clip_projector', tokens)
        assert torch.allclose(model.encode_image(image, 'InternVL-C'), pooled, atol=1e-5)
        qllama = {k[len('qllama.'):]: v for k, v in sd.items() if k.startswith('qllama.')}
        queries = sd['query_tokens'].expand(2, -1, -1)
        hidden = reference_qllama(qllama, queries, additive(torch.ones(2, NQ, NQ, dtype=torch.bool)), vision=tokens)
        g = F.normalize(pooled, dim=-1) + F.normalize(reference_pooling(sd, 'clip_projector2', hidden), dim=-1)
        ours = model.encode_image(image, 'InternVL-G')
    assert torch.allclose(ours, g, atol=1e-5)
    norms = ours.norm(dim=-1)
    assert ((norms > 1.0 + 1e-3) & (norms < 2.0)).all()  # a sum of two unit vectors, not renormalised


def test_logits_follow_logit_scale_and_are_transposes(clip):
    model, tokenizer, _, _ = clip
    image = torch.randn(3, 3, 28, 28)
    text = tokenize_texts(tokenizer, ['a cat', 'a dog'])
    for mode in ('InternVL-C', 'InternVL-G'):
        with torch.no_grad():
            per_image, per_text = model(image, text, mode)
            cosine = F.normalize(model.encode_image(image, mode), dim=-1) @ F.normalize(model.encode_text(text), dim=-1).t()
            assert per_image.shape == (3, 2) and torch.equal(per_text, per_image.t())
            assert torch.allclose(per_image, model.logit_scale.exp() * cosine, atol=1e-5)
            model.logit_scale += math.log(2)
            doubled, _ = model(image, text, mode)
            model.logit_scale -= math.log(2)
        assert torch.allclose(doubled, 2 * per_image, atol=1e-5)
    with pytest.raises(ValueError, match="mode='CLIP'"):
        model(image, text, 'CLIP')


def test_tokenize_texts_gives_the_slow_llama_ids(clip):
    _, tokenizer, _, _ = clip
    words = tokenizer('summarize:a photo of a red panda', add_special_tokens=False)['input_ids']
    ids = tokenize_texts(tokenizer, ['a photo of a red panda'], max_length=len(words) + 5)
    assert ids[0].tolist() == [1] + words + [2, 0, 0, 0]
    short = tokenize_texts(tokenizer, ['a photo of a red panda'], max_length=4)  # truncated, eos kept
    assert short[0].tolist() == [1] + words[:2] + [2]
    prompt, mask = caption_prompt(tokenizer)
    assert prompt[0, 0] == 1 and prompt[0, -1] != 2 and mask.all()


def test_caption_generation_with_the_cache_equals_recomputing_everything(clip):
    model, tokenizer, sd, _ = clip
    image = torch.randn(1, 3, 28, 28)
    ids, mask = caption_prompt(tokenizer)
    greedy = model.generate(image, ids, mask, do_sample=False, max_new_tokens=6, min_new_tokens=6)
    with torch.no_grad():  # no cache: the whole sequence again at every step, the queries reading the image
        tokens = model.vision_tokens(image)
        embeds = torch.cat([model.query_tokens, model.qllama.get_input_embeddings()(ids)], dim=1)
        steps = []
        for _ in range(6):
            logits = model.qllama(inputs_embeds=embeds, vision_hidden_states=tokens, bidirectional_prefix=NQ).logits
            steps.append(int(logits[0, -1].argmax()))
            embeds = torch.cat([embeds, model.qllama.get_input_embeddings()(torch.tensor([steps[-1:]]))], dim=1)
    assert greedy[0].tolist() == steps
    with pytest.raises(ValueError, match='use_cache=False is not supported'):
        model.generate(image, ids, mask, use_cache=False)
    # the first token: queries bidirectional among themselves, then the prompt, causal
    qllama = {k[len('qllama.'):]: v for k, v in sd.items() if k.startswith('qllama.')}
    with torch.no_grad():
        embeds = torch.cat([sd['query_tokens'], qllama['model.embed_tokens.weight'][ids]], dim=1)
        n = embeds.shape[1]
        visible = torch.ones(n, n, dtype=torch.bool).tril()
        visible[:NQ, :NQ] = True
        hidden = reference_qllama(qllama, embeds, additive(visible[None]), vision=model.vision_tokens(image))
    assert greedy[0, 0] == (hidden[0, -1] @ qllama['lm_head.weight'].t()).argmax()
    beams = model.generate(image, ids, mask, num_beams=3, min_new_tokens=5, max_new_tokens=5)
    assert beams.shape == (1, 5)


def test_cross_attention_frequency_comes_from_the_top_level(tmp_path, caplog):
    make_clip_folder(tmp_path, num_query_token=NQ)
    config = json.loads((tmp_path / 'config.json').read_text())
    config['qllama_config']['cross_attention_frequency'] = 1
    (tmp_path / 'config.json').write_text(json.dumps(config))
    with caplog.at_level(logging.WARNING):
        model = InternVLModel.from_pretrained(tmp_path)
    assert 'cross_attention_frequency=1 is ignored' in caplog.text
    assert [layer.cross_attn is not None for layer in model.qllama.model.layers] == [True, False]


def test_bad_inputs_are_named(tmp_path, clip):
    make_native_chat_folder(tmp_path / 'chat')
    with pytest.raises(CheckpointError, match='not an InternVL-C/G'):
        InternVLModel.from_pretrained(tmp_path / 'chat')
    with pytest.raises(CheckpointError, match='no config.json'):
        InternVLModel.from_pretrained(tmp_path)
    model = clip[0]
    with pytest.raises(ValueError, match='no token other than padding'):
        model.encode_text(torch.zeros(1, 5, dtype=torch.long))


def test_weights_no_part_takes_are_refused_by_name(tmp_path):
    from safetensors.torch import load_file, save_file
    make_clip_folder(tmp_path)
    weights = tmp_path / 'model.safetensors'
    stray = {'clip_projector3.proj.weight': torch.zeros(2), 'vision_model.head.weight': torch.zeros(2)}
    save_file({**load_file(str(weights)), **stray}, str(weights))
    with pytest.raises(CheckpointError, match='weights belong to no part of this model') as error:
        InternVLModel.from_pretrained(tmp_path)
    assert all(key in str(error.value) for key in stray)
