"""Windowed attention (ViTDet) and the cls-free InternViT of the detection recipe, in the core model."""
import pytest
import torch

from internvl import InternViT
from safetensors.torch import save_file

from internvl.checkpoint import load_pretrained

ARCH = dict(embed_dims=64, num_layers=4, num_heads=4, mlp_ratio=4.0, norm_type='rms', qk_norm=True, qkv_bias=False,
            layer_scale_init=1.0, patch_size=16, img_size=64)


def build(**kwargs) -> InternViT:
    torch.manual_seed(0)
    return InternViT(ARCH, out_indices=[0, 1, 2, 3], **kwargs).eval()


def same_weights(reference: InternViT, **kwargs) -> InternViT:
    model = InternViT(ARCH, out_indices=[0, 1, 2, 3], **kwargs).eval()
    model.load_state_dict(reference.state_dict())
    return model


def images(h: int, w: int, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(h * w))


@pytest.mark.parametrize('size', [(96, 80), (112, 128), (50, 70)])
def test_one_window_over_the_map_equals_global(size):
    """A window at least as large as the patch grid: every block's output equals global attention (the
    padding of the grid up to the window is masked out, so it is invisible)."""
    global_model = build(use_cls_token=False)
    windowed = same_weights(global_model, use_cls_token=False, window_size=8)
    x = images(*size)
    with torch.no_grad():
        for g, w in zip(global_model(x), windowed(x)):
            torch.testing.assert_close(w, g, rtol=1e-5, atol=1e-5)


def test_smaller_windows_differ_from_global():
    global_model = build(use_cls_token=False)
    windowed = same_weights(global_model, use_cls_token=False, window_size=2, global_attn_indexes=[3])
    x = images(96, 96)
    with torch.no_grad():
        assert (windowed(x)[0] - global_model(x)[0]).abs().max() > 1e-3


@pytest.mark.parametrize('grid', [(7, 5), (6, 6), (3, 8)])
def test_windowed_block_equals_attention_restricted_to_each_window(grid):
    """Independent reference: global attention with a mask that lets a token attend only the tokens of
    its own window (windows tiled from the top-left). Grids that are not multiples of the window show
    the padding is invisible: a border window attends exactly its real tokens."""
    model = build(use_cls_token=False, window_size=3)
    block = model.blocks[0]
    h, w = grid
    x = torch.randn(2, h * w, 64, generator=torch.Generator().manual_seed(3))
    index = torch.arange(h * w)
    window_id = (index // w) // 3 * 1000 + (index % w) // 3
    mask = window_id[:, None] == window_id[None, :]
    with torch.no_grad():
        ours = block(x, grid)
        attended = block.ls1(x, block.attn(block.norm1(x), mask))
        expected = block.ls2(attended, block.mlp(block.norm2(attended)))
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_cls_token_skips_windowed_blocks_and_global_blocks_use_it():
    model = build(window_size=2, global_attn_indexes=[2])
    tokens, grid = model.embed(images(64, 64))
    with torch.no_grad():
        after_windowed = model.run_blocks(tokens, grid, 0, 2)
        after_global = model.run_blocks(after_windowed, grid, 2, 3)
    assert torch.equal(after_windowed[:, 0], tokens[:, 0])
    assert not torch.allclose(after_global[:, 0], tokens[:, 0])


def test_stochastic_depth_drops_whole_images_in_windowed_blocks():
    """A dropped path drops it for the image, not for one of its windows."""
    model = InternViT(ARCH, out_indices=[0], use_cls_token=False, window_size=2, drop_path_rate=1.0).train()
    block = model.blocks[-1]
    block.drop_path.drop_prob = 0.5
    torch.manual_seed(1)
    x = torch.randn(16, 36, 64)
    with torch.no_grad():
        branch_changed = (block(x, (6, 6)) - x).abs().amax(-1) > 0  # [B, tokens]
    per_image = branch_changed.all(1) | ~branch_changed.any(1)
    assert per_image.all(), 'some image had its residual branches dropped in some windows only'
    assert branch_changed.all(1).any() and (~branch_changed.any(1)).any()


def test_without_cls_token_loads_a_checkpoint_with_one(tmp_path):
    """use_cls_token=False drops the checkpoint's cls token and its position entry (strict otherwise)."""
    source = InternViT(dict(ARCH, patch_size=14, img_size=56), out_indices=[3]).eval()
    save_file(source.state_dict(), tmp_path / 'vit.safetensors')  # timm-style keys, as the original .pth
    model = InternViT(ARCH, out_indices=[3], use_cls_token=False)
    load_pretrained(model, tmp_path / 'vit.safetensors')
    assert model.cls_token is None and model.pos_embed.shape == (1, 16, 64)
    torch.testing.assert_close(model.pos_embed, source.pos_embed[:, 1:])  # same 4x4 grid: copied
    assert model.patch_embed.proj.weight.shape[-2:] == (16, 16)  # 14 -> 16, resized on load
    torch.testing.assert_close(model.blocks[2].mlp.fc1.weight, source.blocks[2].mlp.fc1.weight)


def test_windowed_with_cp_matches_outputs_and_gradients():
    reference = build(use_cls_token=False, window_size=3, global_attn_indexes=[1]).train()
    checkpointed = same_weights(reference, use_cls_token=False, window_size=3, global_attn_indexes=[1]).train()
    checkpointed.with_cp = True
    x = images(80, 112, batch=1).requires_grad_(True)
    for model in (reference, checkpointed):
        sum(o.square().mean() for o in model(x)).backward()
    for (name, a), b in zip(reference.named_parameters(), checkpointed.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize('kwargs, message', [
    (dict(window_size=-1), 'window_size=-1'),
    (dict(window_size=4, global_attn_indexes=[9]), 'block index 9 is out of range'),
])
def test_bad_window_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        InternViT(ARCH, **kwargs)
