"""InternVL-Chat in the core, against transformers' own InternVLForConditionalGeneration (an independent
implementation) and against a reference InternLM2 attention written here."""
import math

import pytest
import torch

from internvl.checkpoint import CheckpointError
from internvl.models import InternVLChatModel, load_tokenizer, pixel_shuffle
from internvl.testing import make_clip_folder, make_native_chat_folder, make_opengvlab_chat_folder

TILE = 56


def prompt_ids(tokenizer, tiles: int, tokens_per_tile: int = 4, text: str = 'what is in the picture'):
    query = ('<|im_start|>user\n<img>' + '<IMG_CONTEXT>' * tokens_per_tile * tiles + f'</img>\n{text}<|im_end|>\n'
             '<|im_start|>assistant\n')
    return tokenizer(query, return_tensors='pt')


@pytest.fixture(scope='module', params=['qwen2', 'llama'])
def native(request, tmp_path_factory):
    path = tmp_path_factory.mktemp(f'native-{request.param}')
    reference = make_native_chat_folder(path, llm=request.param)
    return path, reference, load_tokenizer(path)


def test_logits_and_greedy_tokens_match_transformers(native):
    path, reference, tokenizer = native
    model = InternVLChatModel.from_pretrained(path)
    torch.manual_seed(0)
    pixel_values = torch.randn(3, 3, TILE, TILE)
    inputs = prompt_ids(tokenizer, tiles=3)
    with torch.no_grad():
        expected = reference(input_ids=inputs.input_ids, pixel_values=pixel_values,
                             attention_mask=inputs.attention_mask).logits
        logits = model(pixel_values, inputs.input_ids, inputs.attention_mask).logits
    assert (logits - expected).abs().max() / expected.abs().max() < 1e-4
    new = reference.generate(input_ids=inputs.input_ids, pixel_values=pixel_values,
                             attention_mask=inputs.attention_mask, max_new_tokens=12, do_sample=False)
    ours = model.generate(pixel_values, inputs.input_ids, inputs.attention_mask, max_new_tokens=12, do_sample=False)
    assert torch.equal(ours, new[:, inputs.input_ids.shape[1]:])


def test_loss_matches_transformers(native):
    path, reference, tokenizer = native
    model = InternVLChatModel.from_pretrained(path)
    pixel_values = torch.randn(1, 3, TILE, TILE)
    inputs = prompt_ids(tokenizer, tiles=1)
    labels = inputs.input_ids.clone()
    labels[:, :10] = -100
    with torch.no_grad():
        expected = reference(input_ids=inputs.input_ids, pixel_values=pixel_values, labels=labels).loss
        loss = model(pixel_values, inputs.input_ids, labels=labels).loss
    assert torch.allclose(loss, expected, rtol=1e-5)


def test_select_layer_indexes_hidden_states_from_the_embedding(tmp_path):
    from transformers import InternVLForConditionalGeneration
    make_native_chat_folder(tmp_path)
    reference = InternVLForConditionalGeneration.from_pretrained(tmp_path, vision_feature_layer=-2).eval()
    reference.save_pretrained(tmp_path)
    model = InternVLChatModel.from_pretrained(tmp_path)
    assert model.select_layer == -2 and model.num_vit_blocks == 2  # of 3 blocks: the output of block 2
    tokenizer = load_tokenizer(tmp_path)
    pixel_values = torch.randn(2, 3, TILE, TILE)
    inputs = prompt_ids(tokenizer, tiles=2)
    with torch.no_grad():
        expected = reference(input_ids=inputs.input_ids, pixel_values=pixel_values).logits
        logits = model(pixel_values, inputs.input_ids).logits
    assert (logits - expected).abs().max() / expected.abs().max() < 1e-4


def test_pixel_shuffle_matches_transformers_and_v1_is_transposed():
    from transformers.models.internvl.modeling_internvl import InternVLModel as HFInternVLModel
    x = torch.randn(2, 8, 8, 6)
    expected = HFInternVLModel.pixel_shuffle(None, x, scale_factor=0.5)
    assert torch.equal(pixel_shuffle(x, 0.5, 'v2'), expected)
    assert torch.equal(pixel_shuffle(x, 0.5, 'v1'), expected.transpose(1, 2))
    # v2 folds each 2x2 block of cells into one token, row by row: token (0, 1) holds (row, col) cells
    # (0, 2), (0, 3), (1, 2), (1, 3)
    assert torch.equal(pixel_shuffle(x, 0.5)[0, 0, 1], torch.cat([x[0, 0, 2], x[0, 0, 3], x[0, 1, 2], x[0, 1, 3]]))


@pytest.mark.parametrize('llm, template', [('internlm2', 'internlm2-chat'), ('llama', 'Hermes-2'),
                                           ('phi3', 'phi3-chat'), ('qwen2', 'Hermes-2')])
def test_opengvlab_layout_loads_every_weight(tmp_path, llm, template):
    expected = make_opengvlab_chat_folder(tmp_path, llm=llm, template=template)
    model = InternVLChatModel.from_pretrained(tmp_path, torch_dtype=torch.bfloat16)
    assert model.template == template and model.llm_arch.lower().startswith(llm)
    state = model.state_dict()
    assert set(state) == set(expected)
    for key, value in expected.items():
        assert torch.equal(state[key], value.to(torch.bfloat16)), key


def internlm2_reference_attention(x, wqkv, wo, heads, kv_heads, theta, factor, max_positions):
    """InternLM2's attention as its modeling file computes it: wqkv rows grouped per key/value head as
    (h, groups + 2, d) -> queries, key, value; rotate-half rope whose base grows past max_positions
    (dynamic NTK: base * ((factor * len / max) - (factor - 1)) ** (d / (d - 2))); causal softmax."""
    b, n, _ = x.shape
    d = wqkv.shape[0] // (kv_heads * (heads // kv_heads + 2))
    groups = heads // kv_heads
    qkv = (x @ wqkv.t()).view(b, n, kv_heads, groups + 2, d)
    q = qkv[..., :groups, :].reshape(b, n, heads, d).transpose(1, 2)
    k = qkv[..., -2, :].transpose(1, 2).repeat_interleave(groups, dim=1)
    v = qkv[..., -1, :].transpose(1, 2).repeat_interleave(groups, dim=1)
    base = theta
    if n > max_positions:
        base = theta * ((factor * n / max_positions) - (factor - 1)) ** (d / (d - 2))
    inv_freq = 1.0 / (base ** (torch.arange(0, d, 2).float() / d))
    freqs = torch.outer(torch.arange(n).float(), inv_freq)
    emb = torch.cat([freqs, freqs], dim=-1)
    cos, sin = emb.cos(), emb.sin()

    def rotate(t):
        t1, t2 = t[..., :d // 2], t[..., d // 2:]
        return t * cos + torch.cat([-t2, t1], dim=-1) * sin
    scores = rotate(q) @ rotate(k).transpose(-1, -2) / math.sqrt(d)
    scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float('-inf'))
    out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, heads * d)
    return out @ wo.t()


@pytest.mark.parametrize('length', [24, 80])  # within and past max_position_embeddings=48
def test_internlm2_conversion_equals_its_reference_attention(tmp_path, length):
    from safetensors.torch import load_file
    make_opengvlab_chat_folder(tmp_path, llm='internlm2', rope_scaling={'type': 'dynamic', 'factor': 2.0})
    import json
    config = json.loads((tmp_path / 'config.json').read_text())
    config['llm_config']['max_position_embeddings'] = 48
    (tmp_path / 'config.json').write_text(json.dumps(config))
    packed = load_file(str(tmp_path / 'model.safetensors'))
    model = InternVLChatModel.from_pretrained(tmp_path)
    llm = model.language_model
    x = torch.randn(2, length, llm.config.hidden_size)
    positions = torch.arange(length)[None].expand(2, -1)
    with torch.no_grad():
        rope = llm.model.rotary_emb(x, positions)
        mask = torch.zeros(length, length).masked_fill(torch.ones(length, length, dtype=torch.bool).triu(1),
                                                        float('-inf'))[None, None]
        ours, _ = llm.model.layers[0].self_attn(x, position_embeddings=rope, attention_mask=mask)
        expected = internlm2_reference_attention(
            x, packed['language_model.model.layers.0.attention.wqkv.weight'],
            packed['language_model.model.layers.0.attention.wo.weight'], heads=4, kv_heads=2, theta=10000.0,
            factor=2.0, max_positions=48)
    assert torch.allclose(ours, expected, atol=1e-5, rtol=1e-4)


@pytest.fixture(scope='module')
def internlm2_chat(tmp_path_factory):
    path = tmp_path_factory.mktemp('internlm2-chat')
    make_opengvlab_chat_folder(path, llm='internlm2')
    return InternVLChatModel.from_pretrained(path), load_tokenizer(path)


def recorded_generate(model, monkeypatch):
    calls = []
    original = model.language_model.generate

    def generate(**kwargs):
        calls.append(kwargs)
        return original(**kwargs)
    monkeypatch.setattr(model.language_model, 'generate', generate)
    return calls


def test_chat_rounds_image_tokens_and_stop_token(internlm2_chat, monkeypatch):
    model, tokenizer = internlm2_chat
    calls = recorded_generate(model, monkeypatch)
    seen = []
    original_call = type(tokenizer).__call__
    monkeypatch.setattr(type(tokenizer), '__call__', lambda self, text, **kw: seen.append(text) or
                        original_call(self, text, **kw))
    pixel_values = torch.randn(3, 3, TILE, TILE)
    config = dict(max_new_tokens=4, do_sample=False)
    answer, history = model.chat(tokenizer, pixel_values, 'describe the image', config, return_history=True)
    _, history = model.chat(tokenizer, pixel_values, 'and now?', config, history=history, return_history=True)
    assert history[0][0] == '<image>\ndescribe the image' and history[1][0] == 'and now?'
    assert history[0][1] == answer
    first, second = seen
    assert first.count('<IMG_CONTEXT>') == second.count('<IMG_CONTEXT>') == 3 * model.num_image_token
    assert second.count('<img>') == 1 and f'describe the image<|im_end|><|im_start|>assistant\n{answer}' in second
    stop = tokenizer.convert_tokens_to_ids('<|im_end|>')
    assert stop != tokenizer.eos_token_id
    assert all(call['eos_token_id'] == stop for call in calls)


def test_chat_places_several_images_in_order(internlm2_chat, monkeypatch):
    model, tokenizer = internlm2_chat
    seen = []
    original_call = type(tokenizer).__call__
    monkeypatch.setattr(type(tokenizer), '__call__', lambda self, text, **kw: seen.append(text) or
                        original_call(self, text, **kw))
    pixel_values = torch.randn(3, 3, TILE, TILE)
    model.chat(tokenizer, pixel_values, 'Image-1: <image>\nImage-2: <image>\ncompare', dict(max_new_tokens=2),
               num_patches_list=[1, 2])
    n = model.num_image_token
    assert f'Image-1: <img>{"<IMG_CONTEXT>" * n}</img>\nImage-2: <img>{"<IMG_CONTEXT>" * 2 * n}</img>' in seen[0]
    with pytest.raises(ValueError, match='sums to 2 tiles, pixel_values has 3'):
        model.chat(tokenizer, pixel_values, 'q', dict(max_new_tokens=2), num_patches_list=[1, 1])


def test_batch_chat_pads_left_and_answers_as_chat(internlm2_chat):
    model, tokenizer = internlm2_chat
    torch.manual_seed(1)
    pixel_values = torch.randn(3, 3, TILE, TILE)
    config = dict(max_new_tokens=6, do_sample=False)
    questions = ['describe the image in detail', 'what is in the picture']
    side = tokenizer.padding_side
    answers = model.batch_chat(tokenizer, pixel_values, questions, config, num_patches_list=[1, 2])
    assert tokenizer.padding_side == side
    assert answers[0] == model.chat(tokenizer, pixel_values[:1], questions[0], config)
    assert answers[1] == model.chat(tokenizer, pixel_values[1:], questions[1], config)
    assert model.batch_chat(tokenizer, pixel_values, questions, config, image_counts=[1, 2]) == answers


def test_vision_tower_is_the_same_inside_the_segmentation_backbone(tmp_path):
    from internvl_mmlab.models.backbone import InternViTBackbone
    make_opengvlab_chat_folder(tmp_path, llm='qwen2', template='Hermes-2')
    chat = InternVLChatModel.from_pretrained(tmp_path)
    backbone = InternViTBackbone(arch=chat.vision_model.arch, pretrained=str(tmp_path), out_indices=(-1,))
    backbone.init_weights()
    backbone.eval()
    image = torch.randn(2, 3, TILE, TILE)
    with torch.no_grad():
        (dense,) = backbone(image)
        x, grid = chat.vision_model.embed(image)
        expected = chat.vision_model.to_map(chat.vision_model.run_blocks(x, grid, 0, 3), grid)
    assert torch.allclose(dense, expected, atol=1e-6)


def test_bad_inputs_are_named(tmp_path, internlm2_chat):
    make_clip_folder(tmp_path / 'clip')
    with pytest.raises(CheckpointError, match='not an InternVL-Chat model folder.*InternVLModel'):
        InternVLChatModel.from_pretrained(tmp_path / 'clip')
    make_native_chat_folder(tmp_path / 'chat')
    with pytest.raises(ValueError, match="unknown conversation template 'nope'"):
        InternVLChatModel.from_pretrained(tmp_path / 'chat', template='nope')
    model, tokenizer = internlm2_chat
    inputs = prompt_ids(tokenizer, tiles=1)
    model.img_context_token_id = tokenizer.convert_tokens_to_ids('<IMG_CONTEXT>')
    with pytest.raises(ValueError, match='4 <IMG_CONTEXT> tokens but the images give 2 tiles'):
        model(torch.randn(2, 3, TILE, TILE), inputs.input_ids)


@pytest.mark.parametrize('layout, stray', [
    ('opengvlab', {'mlp2.0.weight': torch.zeros(2), 'vision_model.extra_head.weight': torch.zeros(2)}),
    ('transformers', {'model.extra_projector.weight': torch.zeros(2)}),
])
def test_weights_no_part_takes_are_refused_by_name(tmp_path, layout, stray):
    """A key outside the vision tower, the projector and the language model would be dropped without a
    word: it is refused, named."""
    from safetensors.torch import load_file, save_file
    folder = tmp_path / layout
    if layout == 'opengvlab':
        make_opengvlab_chat_folder(folder)
    else:
        make_native_chat_folder(folder)
    InternVLChatModel.from_pretrained(folder)  # loads as written
    weights = sorted(folder.glob('*.safetensors'))[0]
    save_file({**load_file(str(weights)), **stray}, str(weights), metadata={'format': 'pt'})
    with pytest.raises(CheckpointError, match='weights belong to no part of this model') as error:
        InternVLChatModel.from_pretrained(folder)
    assert all(key in str(error.value) for key in stray)
