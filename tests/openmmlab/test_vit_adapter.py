"""The ViT-Adapter on InternViT (one implementation, in mmdet's and mmseg's registries)."""
import pytest
import torch
from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch

import mmdet_custom  # noqa: F401
import mmseg_custom  # noqa: F401
from mmdet.registry import MODELS as DET_MODELS
from internvl_mmlab.models.vit_adapter import InternViTAdapter, deformable_attention, reference_points
from mmseg.registry import MODELS as SEG_MODELS

ARCH = dict(embed_dims=64, num_layers=4, num_heads=4, mlp_ratio=4.0, norm_type='rms', qk_norm=True, qkv_bias=False,
            layer_scale_init=0.1, patch_size=16, img_size=64)
ADAPTER = dict(type='InternViTAdapter', arch=ARCH, interaction_indexes=[[0, 1], [2, 3]], conv_inplane=16,
               deform_num_heads=4, deform_ratio=0.5)


def build(registry=DET_MODELS, **kwargs) -> InternViTAdapter:
    torch.manual_seed(0)
    model = registry.build(dict(ADAPTER, **kwargs))
    model.init_weights()
    return model


@pytest.mark.parametrize('registry', [DET_MODELS, SEG_MODELS], ids=['mmdet', 'mmseg'])
@pytest.mark.parametrize('size', [(64, 64), (96, 160), (224, 128)])
@pytest.mark.parametrize('use_cls_token', [True, False])
def test_four_maps_at_strides_4_to_32(registry, size, use_cls_token):
    model = build(registry, use_cls_token=use_cls_token, window_size=2, global_attn_indexes=[1, 3]).eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, *size))
    assert [tuple(o.shape) for o in outs] == [(2, 64, size[0] // s, size[1] // s) for s in (4, 8, 16, 32)]


def test_same_class_in_both_registries():
    assert DET_MODELS.get('InternViTAdapter') is SEG_MODELS.get('InternViTAdapter') is InternViTAdapter
    assert DET_MODELS.get('InternViT') is SEG_MODELS.get('InternViT')


@pytest.mark.parametrize('kwargs, message', [
    (dict(arch=dict(ARCH, patch_size=14, img_size=56)), 'patch must be 16'),
    (dict(interaction_indexes=[[0, 1], [3, 3]]), 'consecutive'),
    (dict(interaction_indexes=[[0, 1], [2, 4]]), 'consecutive'),
    (dict(interaction_indexes=[[0, 1], [2, 2]]), 'covering all 4 blocks'),
    (dict(out_indices=[3]), 'out_indices does not apply'),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DET_MODELS.build(dict(ADAPTER, **kwargs))


def test_sides_not_multiples_of_32_are_refused_clearly():
    with pytest.raises(ValueError, match='multiples of 32, got 80x64'):
        build()(torch.randn(1, 3, 80, 64))


def test_deformable_attention_keeps_mmcv_initialisation():
    """The adapter's own initialisation leaves mmcv's (zero attention logits, the rotating offset pattern)."""
    attn = build().injectors[0].attn
    assert torch.all(attn.attention_weights.weight == 0) and torch.all(attn.sampling_offsets.weight == 0)
    assert attn.sampling_offsets.bias.abs().max() > 0


def test_deformable_path_equals_mmcv_pytorch_reference():
    """The injector's and extractor's attention equal a direct computation with mmcv's pure-PyTorch
    ``multi_scale_deformable_attn_pytorch``: sampling locations = normalised (x, y) cell centres of the
    query grid + offsets / (w, h) of each level, softmax over levels x points, value / output projections."""
    model = build()
    H, W = 96, 128
    shapes = [(H // s, W // s) for s in (8, 16, 32)]
    grid = (H // 16, W // 16)
    torch.manual_seed(1)
    c = torch.randn(2, sum(h * w for h, w in shapes), 64)
    x = torch.randn(2, grid[0] * grid[1], 64)
    for attn, query, value, value_shapes, query_shapes in (
            (model.injectors[0].attn, x, c, shapes, [grid]),
            (model.extractors[0][0].attn, c, x, [grid], shapes)):
        torch.nn.init.normal_(attn.sampling_offsets.weight, std=0.1)  # away from the initial pattern
        torch.nn.init.normal_(attn.attention_weights.weight, std=0.1)
        with torch.no_grad():
            ours = deformable_attention(attn, query, value, reference_points(query_shapes, 'cpu'), value_shapes)
            expected = reference_deformable_attention(attn, query, value, query_shapes, value_shapes)
        torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def reference_deformable_attention(attn, query, value, query_shapes, value_shapes):
    B, Nq, _ = query.shape
    heads, levels, points = attn.num_heads, attn.num_levels, attn.num_points
    centres = []
    for h, w in query_shapes:
        ys, xs = torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w, indexing='ij')
        centres.append(torch.stack([xs.reshape(-1), ys.reshape(-1)], -1))
    centres = torch.cat(centres)  # [Nq, 2] as (x, y)
    v = attn.value_proj(value).view(B, value.shape[1], heads, -1)
    offsets = attn.sampling_offsets(query).view(B, Nq, heads, levels, points, 2)
    normaliser = torch.tensor([[w, h] for h, w in value_shapes], dtype=torch.float32)  # (w, h) per level
    locations = centres[None, :, None, None, None, :] + offsets / normaliser[None, None, None, :, None, :]
    weights = attn.attention_weights(query).view(B, Nq, heads, levels * points).softmax(-1)
    weights = weights.view(B, Nq, heads, levels, points)
    sampled = multi_scale_deformable_attn_pytorch(v, torch.tensor(value_shapes), locations, weights)
    return attn.output_proj(sampled)


def test_frozen_vit_is_bit_identical_after_training_while_the_adapter_learns():
    model = build(frozen=True).train()
    vit_before = {k: v.clone() for k, v in model.vit.state_dict().items()}
    adapter_before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith('vit.')}
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and not any(p.requires_grad for p in model.vit.parameters())
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    for _ in range(2):
        loss = sum(o.square().mean() for o in model(torch.randn(2, 3, 64, 96)))
        loss.backward()
        assert all(p.grad is None for p in model.vit.parameters())
        assert model.injectors[0].gamma.grad.abs().sum() > 0  # reaches the injector through the frozen blocks
        optimizer.step()
        optimizer.zero_grad()
    assert all(torch.equal(v, model.vit.state_dict()[k]) for k, v in vit_before.items())
    after = model.state_dict()
    changed = [k for k, v in adapter_before.items() if v.is_floating_point() and not torch.equal(v, after[k])]
    assert any(k.startswith('injectors.') for k in changed) and any(k.startswith('extractors.') for k in changed)
    assert any(k.startswith('spm.') for k in changed)


def test_with_cp_gives_the_same_outputs_and_gradients():
    plain = build(drop_path_rate=0.0).train()
    checkpointed = build(with_cp=True).train()
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 64, 64)
    for model in (plain, checkpointed):
        sum(o.square().mean() for o in model(x)).backward()
    for (name, a), b in zip(plain.named_parameters(), checkpointed.parameters()):
        if a.grad is not None:
            torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize('frozen', [True, False])
def test_bf16_backbone(frozen):
    """backbone_dtype='bfloat16': a frozen ViT is stored in bf16, a trained one runs under autocast; the
    adapter stays fp32 and gradients reach it."""
    model = build(frozen=frozen, backbone_dtype='bfloat16').train()
    assert model.vit.pos_embed.dtype == (torch.bfloat16 if frozen else torch.float32)
    outs = model(torch.randn(1, 3, 64, 64))
    assert all(o.dtype == torch.float32 and torch.isfinite(o).all() for o in outs)
    sum(o.mean() for o in outs).backward()
    assert model.spm.fc1.weight.grad is not None
    assert (model.vit.blocks[0].attn.qkv.weight.grad is None) == frozen


def bytes_saved_inside_vit_blocks(model, x) -> tuple[int, tuple]:
    """Bytes autograd keeps for the backward pass while the ViT's blocks run, in one forward (a
    recomputed block keeps none: checkpointing stores only its input, outside the block)."""
    total, inside = 0, [False]

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size() if inside[0] else 0
        return t
    handles = [h for block in model.vit.blocks for h in (
        block.register_forward_pre_hook(lambda *_: inside.__setitem__(0, True)),
        block.register_forward_hook(lambda *_: inside.__setitem__(0, False)))]
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        outs = model(x)
    for h in handles:
        h.remove()
    return total, outs


def test_with_cp_checkpoints_a_frozen_vit_that_gradients_flow_through():
    """A frozen ViT stays in eval mode inside the adapter, yet the injectors' gradients flow through its
    blocks: ``with_cp`` must recompute them there too (the original checkpoints whenever it is set)."""
    x = torch.randn(1, 3, 64, 64)
    plain = build(frozen=True).train()
    checkpointed = build(frozen=True, with_cp=True).train()
    checkpointed.load_state_dict(plain.state_dict())
    assert not checkpointed.vit.training
    plain_bytes, plain_outs = bytes_saved_inside_vit_blocks(plain, x)
    cp_bytes, cp_outs = bytes_saved_inside_vit_blocks(checkpointed, x)
    assert plain_bytes > 0 and cp_bytes == 0, (plain_bytes, cp_bytes)
    sum(o.square().mean() for o in plain_outs).backward()
    sum(o.square().mean() for o in cp_outs).backward()
    torch.testing.assert_close(checkpointed.injectors[0].gamma.grad, plain.injectors[0].gamma.grad)
    with torch.no_grad():  # no gradients: nothing to recompute, nothing kept
        assert bytes_saved_inside_vit_blocks(checkpointed, x)[0] == 0


def original_adapter_parameters(D: int, inplanes: int, heads: int, points: int, ratio: float, cffn: float,
                                interactions: int) -> int:
    """Parameters of InternVL-MMDetSeg's InternViTAdapter outside the ViT, counted from its definition
    (adapter_modules.py: SpatialPriorModule with channels-first LayerNorms, Injector / Extractor with
    MSDeformAttn(d_model, n_levels, n_heads, n_points, ratio), ConvFFN with a depthwise 3x3; vit_adapter.py:
    level_embed, up, norm1-4 as LayerNorms), for 4 output levels and the extra extractors."""
    conv = lambda i, o, k=3: i * o * k * k  # noqa: E731 (no bias)
    ln = lambda c: 2 * c  # noqa: E731
    linear = lambda i, o: i * o + o  # noqa: E731
    spm = (conv(3, inplanes) + 2 * conv(inplanes, inplanes) + conv(inplanes, 2 * inplanes)
           + conv(2 * inplanes, 4 * inplanes) + conv(4 * inplanes, 4 * inplanes)
           + ln(inplanes) * 3 + ln(2 * inplanes) + 2 * ln(4 * inplanes)
           + sum(linear(c, D) for c in (inplanes, 2 * inplanes, 4 * inplanes, 4 * inplanes)))

    def msda(levels):
        value = int(D * ratio)
        return (linear(D, heads * levels * points * 2) + linear(D, heads * levels * points) + linear(D, value)
                + linear(value, D))
    hidden = int(D * cffn)
    injector = 2 * ln(D) + msda(3) + D
    extractor = 2 * ln(D) + msda(1) + linear(D, hidden) + hidden * 9 + hidden + linear(hidden, D) + ln(D)
    up = D * D * 4 + D
    return 3 * D + spm + interactions * injector + (interactions + 2) * extractor + up + 4 * ln(D)


@pytest.mark.parametrize('config', ['mask-rcnn_internvit-adapter-6b-224px-frozen_8xb2-1x_coco.py',
                                    'mask-rcnn_internvit-adapter-300m-448px_8xb2-1x_coco.py',
                                    'upernet_internvit-adapter-6b-224px-frozen_8xb2-80k_ade20k-512x512.py'])
def test_recipe_adapter_is_the_original_structure(config):
    """The recipes' adapter, built on the meta device at full size, is the original InternViTAdapter:
    its parameter count outside the ViT, 25 deformable heads for the 6B (16 for the 300M), no cls token,
    channels-first fp32 LayerNorms of eps 1e-6 in the spatial prior and the outputs, eps 1e-5 in the
    interactions."""
    from pathlib import Path

    from mmengine.config import Config

    from internvl.models.norms import LayerNorm2d
    task = 'seg' if config.startswith('upernet') else 'det'
    cfg = Config.fromfile(str(Path(__file__).resolve().parents[2] / 'configs' / task / 'vit_adapter' / config))
    registry = SEG_MODELS if cfg.default_scope == 'mmseg' else DET_MODELS
    with torch.device('meta'):
        model = registry.build(cfg.model.backbone)
    b = cfg.model.backbone
    D = model.vit.embed_dims
    assert model.vit.cls_token is None
    assert model.injectors[0].attn.num_heads == (25 if D == 3200 else 16)
    ours = sum(p.numel() for name, p in model.named_parameters() if not name.startswith('vit.'))
    assert ours == original_adapter_parameters(D, b.conv_inplane, b.deform_num_heads, b.n_points, b.deform_ratio,
                                               b.cffn_ratio, len(b.interaction_indexes))
    spm_norms = [m for m in model.spm.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert len(spm_norms) == 6 and all(isinstance(m, LayerNorm2d) and m.eps == 1e-6 for m in spm_norms)
    assert all(isinstance(m, LayerNorm2d) and m.eps == 1e-6 for m in model.norms)
    interaction_norms = [m for m in [*model.injectors.modules(), *model.extractors.modules()]
                         if isinstance(m, torch.nn.LayerNorm)]
    assert interaction_norms and all(type(m) is torch.nn.LayerNorm and m.eps == 1e-5 for m in interaction_norms)


def test_output_norms_compute_in_fp32():
    """The norms normalise in fp32 and cast back, whatever the dtype of their input and weights."""
    norm = build().norms[0]
    x = (torch.randn(1, 64, 4, 4) * 100 + 1000).bfloat16()
    expected = torch.nn.functional.layer_norm(x.float().permute(0, 2, 3, 1), (64,), eps=1e-6).permute(0, 3, 1, 2)
    assert torch.equal(norm(x), expected.bfloat16())
    assert torch.equal(norm.bfloat16()(x.float()), expected)
