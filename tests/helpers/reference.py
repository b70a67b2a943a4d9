"""Test fixtures: transformers' InternVLVisionModel (an independent implementation) with random
weights, and writers for every checkpoint layout met in the wild, built from its weights with
mappings written here independently of ``internvl.checkpoint``."""
import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import InternVLVisionConfig, InternVLVisionModel

VARIANTS = {
    # RMSNorm + whole-embedding qk-norm, no qkv bias (the 6B family)
    'rms': dict(norm_type='rms_norm', use_qk_norm=True, attention_bias=False, layer_scale_init_value=0.1),
    # LayerNorm + qkv bias, no qk-norm (the 300M family)
    'ln': dict(norm_type='layer_norm', use_qk_norm=False, attention_bias=True, layer_scale_init_value=1.0),
}
TINY = dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=256,
            image_size=56, patch_size=14)


def our_arch(variant: str) -> dict:
    v = VARIANTS[variant]
    return dict(embed_dims=64, num_layers=3, num_heads=4, mlp_ratio=4.0,
                norm_type='rms' if v['norm_type'] == 'rms_norm' else 'ln', qk_norm=v['use_qk_norm'],
                qkv_bias=v['attention_bias'], layer_scale_init=v['layer_scale_init_value'],
                patch_size=14, img_size=56)


def make_reference(variant: str, seed: int = 0) -> InternVLVisionModel:
    """transformers' model with every parameter random (norm weights and layer scales included)."""
    config = InternVLVisionConfig(**TINY, **VARIANTS[variant], attn_implementation='eager')
    model = InternVLVisionModel(config).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.5 if ('norm' in name or 'lambda' in name) else 0.1
            p.copy_(torch.randn(p.shape, generator=gen) * scale + (1.0 if p.ndim == 1 and 'norm' in name else 0.0))
    return model


def reference_block_outputs(model: InternVLVisionModel, images: torch.Tensor) -> list[torch.Tensor]:
    """Output of every block as NCHW maps (cls token dropped), from transformers' hidden states."""
    with torch.no_grad():
        hidden = model(images, output_hidden_states=True).hidden_states[1:]
    p = model.config.patch_size[0]
    h, w = images.shape[-2] // p, images.shape[-1] // p
    return [t[:, 1:].transpose(1, 2).reshape(t.shape[0], -1, h, w) for t in hidden]


def to_opengvlab(sd: dict) -> dict:
    out = {}
    for k, v in sd.items():
        if k == 'embeddings.cls_token':
            out['embeddings.class_embedding'] = v
        elif k == 'embeddings.position_embeddings':
            out['embeddings.position_embedding'] = v
        elif k.startswith('embeddings.patch_embeddings.projection.'):
            out['embeddings.patch_embedding.' + k.rsplit('.', 1)[1]] = v
        elif k.startswith('encoder.layer.'):
            _, _, n, rest = k.split('.', 3)
            pre = f'encoder.layers.{n}.'
            if rest.startswith('attention.q_proj.'):
                kind = rest.rsplit('.', 1)[1]
                q, kk, vv = (sd[f'encoder.layer.{n}.attention.{x}_proj.{kind}'] for x in 'qkv')
                out[pre + f'attn.qkv.{kind}'] = torch.cat([q, kk, vv])
            elif rest.startswith(('attention.k_proj.', 'attention.v_proj.')):
                continue
            else:
                rest = (rest.replace('attention.projection_layer', 'attn.proj').replace('attention.', 'attn.')
                        .replace('layernorm_before', 'norm1').replace('layernorm_after', 'norm2')
                        .replace('lambda_1', 'ls1').replace('lambda_2', 'ls2'))
                out[pre + rest] = v
        else:
            raise KeyError(k)
    return out


def to_timm(sd: dict) -> dict:
    out = {}
    for k, v in to_opengvlab(sd).items():
        k = (k.replace('embeddings.class_embedding', 'cls_token').replace('embeddings.position_embedding', 'pos_embed')
             .replace('embeddings.patch_embedding', 'patch_embed.proj').replace('encoder.layers.', 'blocks.'))
        if k.endswith(('.ls1', '.ls2')):
            k += '.gamma'
        out[k] = v
    return out


def opengvlab_config(variant: str) -> dict:
    v = VARIANTS[variant]
    return {'architectures': ['InternVisionModel'], 'model_type': 'intern_vit_6b', 'hidden_size': 64,
            'num_hidden_layers': 3, 'num_attention_heads': 4, 'intermediate_size': 256,
            'qk_normalization': v['use_qk_norm'], 'qkv_bias': v['attention_bias'],
            'norm_type': v['norm_type'], 'initializer_factor': v['layer_scale_init_value'],
            'patch_size': 14, 'image_size': 56, 'layer_norm_eps': 1e-6, 'hidden_act': 'gelu'}


def write_sharded(sd: dict, directory: Path, safetensors: bool) -> None:
    """Two shards plus the index json, as Hugging Face writes them."""
    keys = sorted(sd)
    halves = [keys[: len(keys) // 2], keys[len(keys) // 2:]]
    ext, index_name = ('safetensors', 'model.safetensors.index.json') if safetensors else \
        ('bin', 'pytorch_model.bin.index.json')
    stem = 'model' if safetensors else 'pytorch_model'
    weight_map = {}
    for i, part in enumerate(halves):
        name = f'{stem}-{i + 1:05d}-of-00002.{ext}'
        shard = {k: sd[k].contiguous() for k in part}
        if safetensors:
            save_file(shard, directory / name)
        else:
            torch.save(shard, directory / name)
        weight_map.update({k: name for k in part})
    (directory / index_name).write_text(json.dumps({'metadata': {}, 'weight_map': weight_map}))


def write_all_formats(model: InternVLVisionModel, variant: str, root: Path) -> dict[str, Path]:
    """Every published layout of the same weights -> {case name: path to load}."""
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    paths = {}

    d = root / 'hf_native'
    model.save_pretrained(d)
    paths['transformers dir'] = d

    d = root / 'hf_native_sharded_bin'
    d.mkdir()
    write_sharded(sd, d, safetensors=False)
    (d / 'config.json').write_text(json.dumps(model.config.to_dict()))
    paths['transformers sharded .bin'] = d

    ogv = to_opengvlab(sd)
    d = root / 'opengvlab'
    d.mkdir()
    save_file(ogv, d / 'model.safetensors')
    (d / 'config.json').write_text(json.dumps(opengvlab_config(variant)))
    paths['opengvlab dir'] = d

    d = root / 'opengvlab_sharded'
    d.mkdir()
    write_sharded(ogv, d, safetensors=True)
    (d / 'config.json').write_text(json.dumps(opengvlab_config(variant)))
    paths['opengvlab sharded safetensors'] = d

    d = root / 'opengvlab_bin'
    d.mkdir()
    torch.save(ogv, d / 'pytorch_model.bin')
    (d / 'config.json').write_text(json.dumps(opengvlab_config(variant)))
    paths['opengvlab .bin'] = d

    timm = to_timm(sd)
    timm['clip_projector.cross_attn.q.weight'] = torch.randn(8, 64)  # carried by the 224px release
    torch.save({'module': timm}, root / 'intern_vit_timm.pth')
    paths['timm .pth'] = root / 'intern_vit_timm.pth'

    d = root / 'chat'
    d.mkdir()
    chat = {f'vision_model.{k}': v for k, v in ogv.items()}
    chat.update({'mlp1.0.weight': torch.randn(256), 'mlp1.1.weight': torch.randn(32, 256),
                 'language_model.model.embed_tokens.weight': torch.randn(10, 32)})
    save_file(chat, d / 'model.safetensors')
    (d / 'config.json').write_text(json.dumps({
        'architectures': ['InternVLChatModel'], 'model_type': 'internvl_chat',
        'vision_config': opengvlab_config(variant), 'llm_config': {'model_type': 'internlm2'}}))
    paths['internvl-chat dir'] = d

    d = root / 'hf_chat'
    d.mkdir()
    save_file({f'model.vision_tower.{k}': v.contiguous() for k, v in sd.items()}
              | {'model.language_model.embed_tokens.weight': torch.randn(10, 32)}, d / 'model.safetensors')
    (d / 'config.json').write_text(json.dumps({'model_type': 'internvl', 'vision_config': model.config.to_dict()}))
    paths['transformers chat dir'] = d
    return paths
