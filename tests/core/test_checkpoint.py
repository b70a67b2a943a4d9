"""Every published checkpoint layout loads into InternViT and reproduces transformers' outputs;
conversion to our format round-trips; every error path names the file and the problem."""
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from internvl import CheckpointError, InternViT, convert_checkpoint, load_pretrained, read_checkpoint_arch
from internvl.models import ARCH_PRESETS

from reference import make_reference, our_arch, reference_block_outputs, to_timm, write_all_formats

REPO = Path(__file__).resolve().parents[2]
CASES = ['transformers dir', 'transformers sharded .bin', 'opengvlab dir', 'opengvlab sharded safetensors',
         'opengvlab .bin', 'timm .pth', 'internvl-chat dir', 'transformers chat dir', 'ours (converted)']


@pytest.fixture(scope='module', params=['rms', 'ln'])
def formats(request, tmp_path_factory):
    variant = request.param
    ref = make_reference(variant, seed=3)
    root = tmp_path_factory.mktemp(f'formats_{variant}')
    paths = write_all_formats(ref, variant, root)
    paths['ours (converted)'] = root / 'ours.safetensors'
    convert_checkpoint(paths['opengvlab sharded safetensors'], paths['ours (converted)'])
    images = torch.randn(2, 3, 70, 84, generator=torch.Generator().manual_seed(2))
    return variant, paths, images, reference_block_outputs(ref, images)


def rel_err(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize('case', CASES)
def test_every_format_reproduces_transformers(formats, case):
    variant, paths, images, expected = formats
    model = InternViT(our_arch(variant), out_indices=[0, 1, 2], pretrained=str(paths[case])).eval()
    model.init_weights()
    with torch.no_grad():
        ours = model(images)
    for o, e in zip(ours, expected):
        assert rel_err(o, e) < 1e-4


@pytest.mark.parametrize('case', CASES)
def test_arch_is_read_from_the_checkpoint(formats, case):
    variant, paths, images, expected = formats
    arch = read_checkpoint_arch(paths[case])
    # the timm .pth has no config: its arch is inferred from the shapes, and the head count and
    # layer-scale init (not in the weights) come from the preset of the same width and norm, which for
    # the tiny presets are the values of our_arch too
    assert arch == our_arch(variant)
    model = InternViT.from_pretrained(str(paths[case]), out_indices=[2]).eval()
    with torch.no_grad():
        assert rel_err(model(images)[0], expected[2]) < 1e-4


def test_detected_format_is_named(formats, caplog):
    variant, paths, *_ = formats
    model = InternViT(our_arch(variant))
    with caplog.at_level(logging.INFO, logger='internvl'):
        load_pretrained(model, paths['internvl-chat dir'])
    text = caplog.text
    assert 'OpenGVLab remote-code InternVisionModel' in text and "under 'vision_model.'" in text
    assert 'set aside 3 entries outside the vision tower (language_model, mlp1)' in text


def test_converted_file_is_canonical_with_arch_metadata(formats):
    variant, paths, *_ = formats
    from safetensors import safe_open
    with safe_open(str(paths['ours (converted)']), 'pt') as f:
        meta = f.metadata()
        keys = set(f.keys())
    assert meta['format'] == 'internvl-dense/intern_vit'
    assert json.loads(meta['arch']) == our_arch(variant)
    assert keys == set(InternViT(our_arch(variant)).state_dict())


def test_convert_tool_cli(formats, tmp_path):
    variant, paths, *_ = formats
    dst = tmp_path / 'out' / 'vit.safetensors'
    result = subprocess.run([sys.executable, str(REPO / 'tools' / 'convert_checkpoint.py'),
                             str(paths['transformers dir']), str(dst)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    a = load_file(dst)
    b = load_file(paths['ours (converted)'])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_convert_tool_reports_bad_input_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / 'tools' / 'convert_checkpoint.py'),
                             str(tmp_path / 'nope'), str(tmp_path / 'x.safetensors')],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert 'checkpoint not found' in result.stderr and 'Traceback' not in result.stderr
    assert not (tmp_path / 'x.safetensors').exists()


def test_failed_conversion_leaves_existing_output_intact(tmp_path, monkeypatch):
    ref = make_reference('rms')
    src = tmp_path / 'src.pth'
    torch.save(to_timm(ref.state_dict()), src)
    dst = tmp_path / 'dst.safetensors'
    dst.write_bytes(b'previous result')

    def broken_save(*args, **kwargs):
        raise OSError('disk full')
    monkeypatch.setattr('internvl.checkpoint.io.save_file', broken_save)
    with pytest.raises(OSError, match='disk full'):
        convert_checkpoint(src, dst)
    assert dst.read_bytes() == b'previous result'
    assert set(tmp_path.iterdir()) == {src, dst}  # no temporary file left behind


def test_position_embedding_of_another_grid_is_resampled(tmp_path):
    """A 224px checkpoint (grid 16) loads into a 448px model (grid 32)."""
    small = InternViT({**our_arch('rms'), 'img_size': 28})
    path = tmp_path / 'small.pth'
    torch.save(small.state_dict(), path)
    big = InternViT({**our_arch('rms'), 'img_size': 56})
    load_pretrained(big, path)
    assert big.pos_embed.shape == (1, 17, 64)
    torch.testing.assert_close(big.pos_embed[:, :1], small.pos_embed[:, :1])
    # the resampled table reproduces what the small model computes at run time for a 56px input
    torch.testing.assert_close(big.embed(torch.zeros(1, 3, 56, 56))[0], small.embed(torch.zeros(1, 3, 56, 56))[0])


def test_patch_kernel_of_another_size_is_resized(tmp_path):
    src = InternViT(our_arch('ln'))
    path = tmp_path / 'p14.pth'
    torch.save({'module': src.state_dict()}, path)
    dst = InternViT({**our_arch('ln'), 'patch_size': 16, 'img_size': 64})
    load_pretrained(dst, path)
    assert dst.patch_embed.proj.weight.shape == (64, 3, 16, 16)
    torch.testing.assert_close(dst.blocks[2].mlp.fc2.weight, src.blocks[2].mlp.fc2.weight)
    # the loaded kernel gives a 14 -> 16 up-sampled patch the token the 14px kernel gives the patch
    patch = torch.randn(3, 3, 14, 14)
    up = torch.nn.functional.interpolate(patch, size=(16, 16), mode='bilinear', align_corners=False, antialias=True)
    with torch.no_grad():
        torch.testing.assert_close(dst.patch_embed.proj(up), src.patch_embed.proj(patch), rtol=1e-4, atol=1e-4)


# --- error paths ----------------------------------------------------------------------------------

def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match='checkpoint not found: .*nope'):
        load_pretrained(InternViT('internvit-tiny-rms'), tmp_path / 'nope')


def test_unknown_format_names_file_and_keys(tmp_path):
    path = tmp_path / 'resnet.pth'
    torch.save({'conv1.weight': torch.zeros(1), 'fc.weight': torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match=r'resnet\.pth: unknown checkpoint format.*conv1\.weight'):
        load_pretrained(InternViT('internvit-tiny-rms'), path)


def test_shape_mismatch_names_the_entries(tmp_path):
    path = tmp_path / 'wide.pth'
    torch.save(InternViT({**our_arch('rms'), 'embed_dims': 128}).state_dict(), path)
    with pytest.raises(CheckpointError, match=r'wide\.pth.*: shape mismatch .*blocks\.0\.attn\.qkv\.weight: '
                                              r'checkpoint \[384, 128\] vs model \[192, 64\]'):
        load_pretrained(InternViT('internvit-tiny-rms'), path)


def test_missing_and_unexpected_keys_are_named(tmp_path, caplog):
    sd = InternViT('internvit-tiny-rms').state_dict()
    del sd['blocks.1.ls2.gamma']
    sd['blocks.1.attn.rope.freqs'] = torch.zeros(4)
    path = tmp_path / 'odd.pth'
    torch.save(sd, path)
    model = InternViT('internvit-tiny-rms')
    with pytest.raises(CheckpointError, match=r"missing keys \['blocks\.1\.ls2\.gamma'\]; "
                                              r"unexpected keys \['blocks\.1\.attn\.rope\.freqs'\]"):
        load_pretrained(model, path)
    with caplog.at_level(logging.WARNING):
        missing, unexpected = load_pretrained(model, path, strict=False)
    assert missing == ['blocks.1.ls2.gamma'] and unexpected == ['blocks.1.attn.rope.freqs']
    assert 'blocks.1.attn.rope.freqs' in caplog.text
    torch.testing.assert_close(model.blocks[0].attn.qkv.weight, sd['blocks.0.attn.qkv.weight'])


def test_config_contradicting_the_model(formats):
    variant, paths, *_ = formats
    wrong = {**our_arch(variant), 'num_heads': 2}  # same shapes, other function: only the config shows it
    with pytest.raises(CheckpointError, match=r"num_heads: checkpoint 4, model 2"):
        load_pretrained(InternViT(wrong), paths['opengvlab dir'])


def test_directory_without_weights(tmp_path):
    (tmp_path / 'README.md').write_text('hi')
    with pytest.raises(CheckpointError, match=r'cannot tell which file holds the weights.*README\.md'):
        load_pretrained(InternViT('internvit-tiny-rms'), tmp_path)


def test_index_listing_a_missing_shard(tmp_path):
    (tmp_path / 'model.safetensors.index.json').write_text(json.dumps({'weight_map': {'a': 'gone.safetensors'}}))
    with pytest.raises(CheckpointError, match='lists shards that are missing'):
        load_pretrained(InternViT('internvit-tiny-rms'), tmp_path)


@pytest.mark.parametrize('name,content,message', [
    ('bad.safetensors', b'garbage', 'not a readable'),
    ('bad.pth', b'garbage', r'not a checkpoint \(expected a torch.save file'),  # an image, a text file, ...
    ('bad.pth', b'PK\x03\x04garbage', 'not a readable PyTorch checkpoint'),  # a broken torch.save zip
])
def test_corrupt_file(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(CheckpointError, match=rf'{name}: {message}'):
        load_pretrained(InternViT('internvit-tiny-rms'), tmp_path / name)


def test_mmengine_checkpoint_with_pickled_meta(tmp_path):
    """A segmentor checkpoint as mmengine writes it: {'meta', 'message_hub' (history buffers),
    'state_dict': {'backbone.vit.*', 'decode_head.*'}}; read with weights_only and the allowlist."""
    import numpy as np
    import internvl_mmlab  # noqa: F401  (allows mmengine's checkpoint classes)
    from mmengine.logging import MessageHub
    from mmengine.runner.checkpoint import save_checkpoint
    hub = MessageHub.get_instance('test_checkpoint')
    hub.update_scalar('train/loss', 0.5)
    vit = InternViT('internvit-tiny-rms')
    sd = {f'backbone.vit.{k}': v for k, v in vit.state_dict().items()}
    sd['decode_head.conv_seg.weight'] = torch.zeros(2, 64, 1, 1)
    path = tmp_path / 'iter_100.pth'
    save_checkpoint({'meta': {'seed': np.int64(0), 'iter': 100}, 'message_hub': hub.state_dict(),
                     'state_dict': sd}, str(path))
    model = InternViT('internvit-tiny-rms')
    load_pretrained(model, path)
    for key, value in vit.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)


def test_from_pretrained_with_an_explicit_arch_needs_no_inference(tmp_path):
    """A width no preset has: from_pretrained(path, arch=...) loads it (inference would fail)."""
    arch = {**our_arch('rms'), 'embed_dims': 48, 'num_heads': 4}
    src = InternViT(arch)
    torch.save(src.state_dict(), tmp_path / 'odd.pth')
    model = InternViT.from_pretrained(str(tmp_path / 'odd.pth'), arch=arch)
    torch.testing.assert_close(model.pos_embed, src.pos_embed, rtol=0, atol=0)


def test_convert_checks_the_keys_against_the_arch(tmp_path):
    """A checkpoint missing a block, converted with an explicit arch: an error naming the keys, nothing written."""
    sd = InternViT('internvit-tiny-rms').state_dict()
    torch.save({k: v for k, v in sd.items() if not k.startswith('blocks.2.')}, tmp_path / 'short.pth')
    with pytest.raises(CheckpointError, match=r"missing keys \['blocks\.2\.attn\.k_norm\.weight'"):
        convert_checkpoint(tmp_path / 'short.pth', tmp_path / 'out.safetensors', arch=our_arch('rms'))
    assert not (tmp_path / 'out.safetensors').exists()


def test_infer_arch_needs_a_known_width(tmp_path):
    path = tmp_path / 'odd_width.pth'
    torch.save(InternViT({**our_arch('rms'), 'embed_dims': 48, 'num_heads': 4}).state_dict(), path)
    with pytest.raises(CheckpointError, match='no preset of width 48'):
        read_checkpoint_arch(path)
    assert 48 not in {p['embed_dims'] for p in ARCH_PRESETS.values()}
