"""InternViT against transformers' independent InternVLVisionModel, presets, interpolation, errors."""
import pytest
import torch

from internvl import InternViT, build_on_meta, count_parameters
from internvl.models import resample_patch_embed
from internvl.models.intern_vit import resolve_arch

from reference import make_reference, our_arch, reference_block_outputs, to_timm


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def load_from_reference(ref, variant: str) -> InternViT:
    model = InternViT(our_arch(variant), out_indices=[0, 1, 2]).eval()
    model.load_state_dict(to_timm(ref.state_dict()))
    return model


@pytest.mark.parametrize('variant', ['rms', 'ln'])
@pytest.mark.parametrize('size', [(56, 56), (84, 112), (98, 70)], ids=['pretrained', 'larger', 'other'])
def test_matches_transformers(variant, size):
    """Every block's output equals transformers' (fp32, rel. error < 1e-4), at the pretrained input
    size and at sizes that need the position embedding interpolated (transformers also resamples
    bicubically, align_corners=False)."""
    ref = make_reference(variant)
    model = load_from_reference(ref, variant)
    images = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = model(images)
    expected = reference_block_outputs(ref, images)
    assert len(ours) == 3
    for o, e in zip(ours, expected):
        assert o.shape == (2, 64, size[0] // 14, size[1] // 14) and o.dtype == torch.float32
        assert rel_err(o, e) < 1e-4


@pytest.mark.parametrize('variant', ['rms', 'ln'])
@pytest.mark.parametrize('with_cp', [False, True])
def test_training_path_matches_transformers_outputs_and_gradients(variant, with_cp):
    """With autograd recording (the training path: F.linear, no in-place norms), block outputs and every
    parameter's gradient equal transformers' (its q/k/v gradients stacked as our qkv)."""
    from internvl.checkpoint import convert_transformers
    ref = make_reference(variant).train()
    model = load_from_reference(ref, variant).train()
    model.with_cp = with_cp
    images = torch.randn(2, 3, 70, 56, generator=torch.Generator().manual_seed(2))
    ours = model(images)
    hidden = ref(images, output_hidden_states=True).hidden_states[1:]
    expected = [t[:, 1:].transpose(1, 2).reshape(2, -1, 5, 4) for t in hidden]
    for o, e in zip(ours, expected):
        assert rel_err(o.detach(), e.detach()) < 1e-4
    weights = [torch.randn(o.shape, generator=torch.Generator().manual_seed(i)) for i, o in enumerate(ours)]
    sum((o * w).sum() for o, w in zip(ours, weights)).backward()
    sum((e * w).sum() for e, w in zip(expected, weights)).backward()
    ref_grads = convert_transformers({k: p.grad for k, p in ref.named_parameters() if p.grad is not None})
    for name, p in model.named_parameters():
        assert rel_err(p.grad, ref_grads[name]) < 1e-4, name


def test_cpu_linear_backend_is_an_explicit_switch(monkeypatch):
    """The oneDNN fast path is chosen before any forward (never measured inside one), equals F.linear
    (+ GELU) when chosen, leaves autocast to pick the dtype, and a changed private op is refused."""
    from internvl.models import linear as layers
    layer = torch.nn.Linear(16, 32)
    x = torch.randn(4, 16)
    backends = ['aten', 'auto'] + (['onednn'] if layers.find_onednn_linear() is not None else [])
    try:
        for backend in backends:
            chosen = layers.set_cpu_linear_backend(backend)
            assert chosen == layers.cpu_linear_backend() and (backend == 'auto' or chosen == backend)
            with torch.no_grad():
                for gelu in (False, True):
                    expected = torch.nn.functional.linear(x, layer.weight, layer.bias)
                    expected = torch.nn.functional.gelu(expected) if gelu else expected
                    torch.testing.assert_close(layers.linear(x, layer, gelu), expected)
                with torch.autocast('cpu', dtype=torch.bfloat16):  # autocast picks bf16, as F.linear does
                    assert layers.linear(x, layer).dtype == torch.bfloat16
                    assert layers.linear(x, layer, gelu=True).dtype == torch.bfloat16

        layers.set_cpu_linear_backend('aten')  # a forward decides nothing: it never looks for the op
        monkeypatch.setattr(layers, 'find_onednn_linear', lambda: (_ for _ in ()).throw(AssertionError('probed')))
        with torch.no_grad():
            InternViT('internvit-tiny-rms').eval()(torch.randn(1, 3, 56, 56))
        monkeypatch.undo()

        class Changed:  # the private op with another signature
            @property
            def default(self):
                return lambda *args: (_ for _ in ()).throw(TypeError('unexpected arguments'))

        monkeypatch.setattr(torch.ops.mkldnn, '_linear_pointwise', Changed())
        assert layers.find_onednn_linear() is None
        with pytest.raises(RuntimeError, match="'onednn': this torch has no usable"):
            layers.set_cpu_linear_backend('onednn')
        assert layers.set_cpu_linear_backend('auto') == 'aten'
        with pytest.raises(ValueError, match="expected one of"):
            layers.set_cpu_linear_backend('mkl')
    finally:
        layers.set_cpu_linear_backend('aten')


def test_out_indices_order_negative_and_early_stop():
    model = InternViT('internvit-tiny-rms', out_indices=[2, -3]).eval()
    images = torch.randn(1, 3, 56, 56)
    last, first = model(images)
    all_blocks = InternViT('internvit-tiny-rms', out_indices=[0, 1, 2]).eval()
    all_blocks.load_state_dict(model.state_dict())
    b0, _, b2 = all_blocks(images)
    torch.testing.assert_close(first, b0)
    torch.testing.assert_close(last, b2)
    assert model.out_indices == (2, 0)


def test_blocks_after_the_last_index_do_not_run(monkeypatch):
    model = InternViT('internvit-tiny-rms', out_indices=[0]).eval()
    calls = []
    for i, block in enumerate(model.blocks):
        block.register_forward_hook(lambda *_, i=i: calls.append(i))
    model(torch.randn(1, 3, 28, 28))
    assert calls == [0]


def test_with_cp_gives_same_outputs_and_gradients():
    torch.manual_seed(0)
    plain = InternViT('internvit-tiny-ln', drop_path_rate=0.0, out_indices=[1, 2]).train()
    cp = InternViT('internvit-tiny-ln', with_cp=True, out_indices=[1, 2]).train()
    cp.load_state_dict(plain.state_dict())
    images = torch.randn(2, 3, 42, 56)
    grads = []
    for model in (plain, cp):
        model.zero_grad()
        sum(o.square().mean() for o in model(images)).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-5, atol=1e-6)


def test_drop_path_is_active_only_in_training():
    model = InternViT('internvit-tiny-rms', drop_path_rate=0.5)
    assert [b.drop_path.drop_prob for b in model.blocks[1:]] == [0.25, 0.5]
    images = torch.randn(4, 3, 28, 28)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(images)[0], model(images)[0])
        model.train()
        torch.manual_seed(0)
        a = model(images)[0]
        torch.manual_seed(1)
        b = model(images)[0]
    assert not torch.equal(a, b)


@pytest.mark.parametrize('arch,expected_billions', [
    ('internvit-6b-224px', 5.903), ('internvit-6b-448px', 5.536), ('internvit-300m-448px', 0.304)])
def test_published_presets_on_meta(arch, expected_billions):
    model = build_on_meta(arch)
    assert count_parameters(model) / 1e9 == pytest.approx(expected_billions, abs=1e-3)
    assert model.pos_embed.device.type == 'meta'
    a = model.arch
    assert model.pos_embed.shape == (1, 1 + (a['img_size'] // 14) ** 2, a['embed_dims'])
    block = model.blocks[0]
    assert block.attn.qkv.weight.shape == (3 * a['embed_dims'], a['embed_dims'])
    assert (block.attn.qkv.bias is not None) == a['qkv_bias']
    assert isinstance(block.attn.q_norm, torch.nn.Identity) != a['qk_norm']
    # meta forward checks every shape of the full-size graph without memory
    out = model(torch.empty(1, 3, 448, 672, device='meta'))
    assert out[0].shape == (1, a['embed_dims'], 32, 48)


def test_6b_qk_norm_spans_whole_embedding():
    block = build_on_meta('internvit-6b-224px').blocks[0]
    assert block.attn.q_norm.weight.shape == (3200,) and block.attn.num_heads == 25


def test_patch_kernel_resize_preserves_tokens_of_upsampled_patches():
    """PI-resize: the 16x16 kernel applied to a 14->16 up-sampled patch gives the 14x14 token."""
    w = torch.randn(8, 3, 14, 14, dtype=torch.float64)
    w16 = resample_patch_embed(w, (16, 16))
    patch = torch.randn(5, 3, 14, 14, dtype=torch.float64)
    up = torch.nn.functional.interpolate(patch, size=(16, 16), mode='bilinear', align_corners=False,
                                         antialias=True)
    torch.testing.assert_close(torch.einsum('bchw,ochw->bo', up, w16), torch.einsum('bchw,ochw->bo', patch, w))


@pytest.mark.parametrize('arch,match', [
    ('internvit-7b', 'unknown InternViT arch'),
    (dict(embed_dims=64), 'missing keys'),
    ({**our_arch('rms'), 'norm_type': 'batch'}, 'norm_type'),
    ({**our_arch('rms'), 'extra': 1}, 'unknown keys'),
    ({**our_arch('rms'), 'img_size': 50}, 'not a multiple'),
    ({**our_arch('rms'), 'num_heads': 5}, 'not divisible'),
])
def test_bad_arch_is_a_clear_error(arch, match):
    with pytest.raises(ValueError, match=match):
        InternViT(arch)


def test_bad_out_indices_and_input():
    with pytest.raises(ValueError, match='out of range for 3 blocks'):
        InternViT('internvit-tiny-rms', out_indices=[3])
    model = InternViT('internvit-tiny-rms')
    with pytest.raises(ValueError, match=r'images \[B, 3, H, W\], got a tensor of shape \[1, 1, 56, 56\]'):
        model(torch.randn(1, 1, 56, 56))


@pytest.mark.parametrize('height,width', [(50, 56), (57, 43), (13, 15)])
def test_any_input_size_is_padded_bottom_right(height, width):
    """A side that is not a multiple of the patch: the same result as zero-padding it by hand, with
    ceil(side / patch) cells; the image's own cells see the same pixels as before."""
    model = InternViT('internvit-tiny-rms', out_indices=[0, 2]).eval()
    images = torch.randn(2, 3, height, width)
    padded = torch.nn.functional.pad(images, (0, -width % 14, 0, -height % 14))
    with torch.no_grad():
        outs, expected = model(images), model(padded)
    for out, want in zip(outs, expected):
        assert out.shape == (2, 64, -(-height // 14), -(-width // 14))
        torch.testing.assert_close(out, want, rtol=0, atol=0)


def test_arch_dict_is_not_mutated():
    arch = our_arch('ln')
    copy = dict(arch)
    InternViT(arch)
    assert arch == copy and resolve_arch(arch) is not arch


def test_img_size_holds_the_position_grid_and_any_load_resamples_to_it():
    """img_size (timm's): the position embedding is held at that grid, no run-time interpolation there;
    a state dict of another square grid is resampled on load_state_dict (bicubic, as the original's
    pretrained one), and an entry count that is no square grid is an error naming pos_embed."""
    from internvl.pos_embed import resample_pos_embed
    torch.manual_seed(0)
    pretrained = InternViT('internvit-tiny-rms', out_indices=[2]).eval()  # 56 px: 4 x 4
    fine = InternViT('internvit-tiny-rms', out_indices=[2], img_size=112).eval()  # 8 x 8
    assert fine.pos_embed.shape == (1, 65, 64) and fine.arch['img_size'] == 112
    fine.load_state_dict(pretrained.state_dict())
    torch.testing.assert_close(fine.pos_embed.data, resample_pos_embed(pretrained.pos_embed.data, (4, 4), (8, 8)))
    x = torch.randn(1, 3, 112, 112)
    with torch.no_grad():  # at 112 px the resampled-once grid equals the run-time resampling of the 4 x 4 one
        torch.testing.assert_close(fine(x)[0], pretrained(x)[0], rtol=1e-4, atol=1e-5)
    broken = dict(pretrained.state_dict(), pos_embed=torch.zeros(1, 20, 64))
    with pytest.raises(ValueError, match=r'pos_embed has 20 entries, which is not 1 \+ a square grid'):
        fine.load_state_dict(broken)
