"""OpenGVLab's released ADE20K segmentors load onto our recipes and predict what the original predicted.

A release is the original's bare state dict (``segmentation/release.py`` saves the ``'module'`` entry).
Here tiny random ones are written in its exact layout, for the three published settings - linear probe
(frozen, FCNHead with_norm), head tuning (frozen, simple FPN + UperNet + aux FCN) and full tuning -
with the backbone and FPN in bf16 as released. The reference below is the original's inference written
from its code (InternVL ``segmentation/``: ``InternViT6B.forward``, its RMSNorm / LayerNorm / qk-norm
over the whole width, ``FCNHead(with_norm=True)``, mmseg 0.30's ``slide_inference`` and the test pipeline
``SETR_Resize`` + ``ResizeToMultiple(14)``); the UPerHead is mmseg's (the same code in 0.30 and 1.x). Our
side is the recipe configs themselves, shrunk, loaded through ``mmseg.apis.init_model``.
"""
from pathlib import Path

import mmcv
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / 'configs' / 'seg' / 'internvit'
WIDTH, DEPTH, HEADS, PATCH, CROP, CLASSES = 64, 4, 4, 14, 56, 150
MEAN, STD = np.array([123.675, 116.28, 103.53]), np.array([58.395, 57.12, 57.375])
SETTINGS = {  # setting -> (recipe, tapped blocks, frozen)
    'linear': ('linear_internvit-6b-224px-frozen_8xb2-80k_ade20k-504x504.py', [2], True),
    'head': ('upernet_internvit-6b-224px-frozen_8xb2-80k_ade20k-504x504.py', [0, 1, 2, 3], True),
    'full': ('upernet_internvit-6b-224px_8xb2-80k_ade20k-504x504.py', [0, 1, 2, 3], False),
}


@pytest.fixture(scope='module')
def registry():
    import mmseg_custom  # noqa: F401
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    return MODELS


def uper_heads(registry) -> tuple[torch.nn.Module, torch.nn.Module]:
    uper = registry.build(dict(type='UPerHead', in_channels=[WIDTH] * 4, in_index=[0, 1, 2, 3], channels=16,
                               num_classes=CLASSES, norm_cfg=dict(type='BN'), align_corners=False))
    aux = registry.build(dict(type='FCNHead', in_channels=WIDTH, in_index=1, channels=8, num_convs=1,
                              concat_input=False, num_classes=CLASSES, norm_cfg=dict(type='BN')))
    return uper, aux


def original_release(setting: str, registry, seed: int = 0, grid: int = CROP // PATCH) -> dict:
    """A random segmentor in the key layout and dtypes the original releases have."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=0.05, shift=0.0, dtype=torch.bfloat16):
        return (torch.randn(*shape, generator=g) * scale + shift).to(dtype)
    C, sd = WIDTH, {}
    sd['backbone.cls_token'] = rand(1, 1, C, scale=0.5)
    sd['backbone.pos_embed'] = rand(1, 1 + grid * grid, C, scale=0.5)
    sd['backbone.patch_embed.proj.weight'] = rand(C, 3, PATCH, PATCH)
    sd['backbone.patch_embed.proj.bias'] = rand(C)
    for i in range(DEPTH):
        p = f'backbone.blocks.{i}.'
        sd |= {p + 'norm1.weight': rand(C, shift=1.0), p + 'attn.qkv.weight': rand(3 * C, C, scale=0.15),
               p + 'attn.q_norm.weight': rand(C, shift=1.0), p + 'attn.k_norm.weight': rand(C, shift=1.0),
               p + 'attn.proj.weight': rand(C, C, scale=0.1), p + 'attn.proj.bias': rand(C),
               p + 'ls1.gamma': rand(C, scale=0.1, shift=0.5), p + 'norm2.weight': rand(C, shift=1.0),
               p + 'mlp.fc1.weight': rand(4 * C, C, scale=0.1), p + 'mlp.fc1.bias': rand(4 * C),
               p + 'mlp.fc2.weight': rand(C, 4 * C, scale=0.05), p + 'mlp.fc2.bias': rand(C),
               p + 'ls2.gamma': rand(C, scale=0.1, shift=0.5)}
    if setting == 'linear':
        sd |= {'decode_head.norm.weight': rand(C, shift=1.0, dtype=torch.float32),
               'decode_head.norm.bias': rand(C, dtype=torch.float32),
               'decode_head.norm.running_mean': rand(C, scale=0.3, dtype=torch.float32),
               'decode_head.norm.running_var': rand(C, scale=0.1, shift=1.0, dtype=torch.float32).abs(),
               'decode_head.norm.num_batches_tracked': torch.tensor(80000),
               'decode_head.conv_seg.weight': rand(CLASSES, C, 1, 1, scale=0.2, dtype=torch.float32),
               'decode_head.conv_seg.bias': rand(CLASSES, dtype=torch.float32)}
        return sd
    for name in ('up1.0', 'up1.3', 'up2.0'):  # ConvTranspose2d(C, C, 2, 2): weight [in, out, 2, 2]
        sd[f'backbone.{name}.weight'] = rand(C, C, 2, 2, scale=0.2)
        sd[f'backbone.{name}.bias'] = rand(C)
    sd['backbone.up1.1.weight'], sd['backbone.up1.1.bias'] = rand(C, shift=1.0), rand(C)  # channels-first LN
    for prefix, head in zip(('decode_head.', 'auxiliary_head.'), uper_heads(registry)):
        for key, value in head.state_dict().items():
            if key.endswith('num_batches_tracked'):
                sd[prefix + key] = torch.tensor(80000)
            elif key.endswith('running_var'):
                sd[prefix + key] = rand(*value.shape, scale=0.1, shift=1.0, dtype=torch.float32).abs()
            else:
                sd[prefix + key] = rand(*value.shape, scale=0.2, dtype=torch.float32)
    return sd


# ---- the original's inference, from its code ----

def rms_norm(x, weight, eps=1e-6):  # its RMSNorm: fp32 statistics, weight times the input dtype
    h = x.float()
    return weight * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def layer_norm_channels_first(x, weight, bias, eps=1e-6):  # its LayerNorm(data_format='channels_first')
    h = x.float()
    u, s = h.mean(1, keepdim=True), (h - h.mean(1, keepdim=True)).pow(2).mean(1, keepdim=True)
    return (weight[:, None, None].float() * ((h - u) / torch.sqrt(s + eps)) + bias[:, None, None].float()).to(x.dtype)


def original_backbone(sd: dict, img: torch.Tensor, taps: list, fpn: bool, dtype: torch.dtype) -> list:
    w = {k[len('backbone.'):]: v.to(dtype) for k, v in sd.items() if k.startswith('backbone.')}
    x = F.conv2d(img.to(dtype), w['patch_embed.proj.weight'], w['patch_embed.proj.bias'], stride=PATCH)
    B, C, H, W = x.shape
    x = torch.cat([w['cls_token'].expand(B, -1, -1), x.flatten(2).transpose(1, 2)], dim=1)
    x = x + w['pos_embed']  # added as stored: the fine-tuning grid, no interpolation
    N, D = x.shape[1], C // HEADS
    outs = []
    for i in range(DEPTH):
        p = f'blocks.{i}.'
        h = rms_norm(x, w[p + 'norm1.weight'])
        q, k, v = F.linear(h, w[p + 'attn.qkv.weight']).reshape(B, N, 3, HEADS, D).permute(2, 0, 3, 1, 4).unbind(0)
        q = rms_norm(q.transpose(1, 2).flatten(-2), w[p + 'attn.q_norm.weight']).view(B, N, HEADS, D).transpose(1, 2)
        k = rms_norm(k.transpose(1, 2).flatten(-2), w[p + 'attn.k_norm.weight']).view(B, N, HEADS, D).transpose(1, 2)
        attn = ((q * D ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
        h = F.linear((attn @ v).transpose(1, 2).reshape(B, N, C), w[p + 'attn.proj.weight'], w[p + 'attn.proj.bias'])
        x = x + h * w[p + 'ls1.gamma']
        h = F.linear(rms_norm(x, w[p + 'norm2.weight']), w[p + 'mlp.fc1.weight'], w[p + 'mlp.fc1.bias'])
        x = x + F.linear(F.gelu(h), w[p + 'mlp.fc2.weight'], w[p + 'mlp.fc2.bias']) * w[p + 'ls2.gamma']
        if i in taps:
            outs.append(x[:, 1:].reshape(B, H, W, C).permute(0, 3, 1, 2))
    if not fpn:
        return [o.float() for o in outs]
    x1, x2, x3, x4 = outs
    f1 = F.conv_transpose2d(x1, w['up1.0.weight'], w['up1.0.bias'], stride=2)
    f1 = F.gelu(layer_norm_channels_first(f1, w['up1.1.weight'], w['up1.1.bias']))
    f1 = F.conv_transpose2d(f1, w['up1.3.weight'], w['up1.3.bias'], stride=2)
    f2 = F.conv_transpose2d(x2, w['up2.0.weight'], w['up2.0.bias'], stride=2)
    return [f.float() for f in (f1, f2, x3, F.max_pool2d(x4, 2, 2))]


def original_encode_decode(sd: dict, setting: str, img: torch.Tensor, dtype: torch.dtype, uper) -> torch.Tensor:
    _, taps, _ = SETTINGS[setting]
    feats = original_backbone(sd, img, taps, fpn=setting != 'linear', dtype=dtype)
    if setting == 'linear':  # FCNHead(num_convs=0, concat_input=False, with_norm=True): norm, then conv_seg
        x = F.batch_norm(feats[-1], sd['decode_head.norm.running_mean'], sd['decode_head.norm.running_var'],
                         sd['decode_head.norm.weight'], sd['decode_head.norm.bias'], False, 0.0, 1e-5)
        out = F.conv2d(x, sd['decode_head.conv_seg.weight'], sd['decode_head.conv_seg.bias'])
    else:
        out = uper(feats)
    return F.interpolate(out, size=img.shape[2:], mode='bilinear', align_corners=False)


def original_inference(sd: dict, setting: str, image: np.ndarray, mode: str, dtype: torch.dtype, uper=None):
    """The original's test pipeline and ``inference`` (rescale to the image): logits [classes, h, w]."""
    h, w = image.shape[:2]
    new_short = max(CROP, CROP)  # SETR_Resize: img_scale (4 * crop, crop), short side to max(crop, scale)
    scale = (new_short * h / w, new_short) if h > w else (new_short, new_short * w / h)
    resized = mmcv.imresize_to_multiple(mmcv.imrescale(image, scale), PATCH, scale_factor=1,
                                        interpolation='bilinear')
    img = torch.from_numpy(((resized[..., ::-1] - MEAN) / STD).astype(np.float32)).permute(2, 0, 1)[None]
    if mode == 'whole':
        logits = original_encode_decode(sd, setting, img, dtype, uper)
    else:  # mmseg 0.30 slide_inference, crop 56, stride 42
        stride, (H, W) = 42, img.shape[2:]
        h_grids, w_grids = max(H - CROP + stride - 1, 0) // stride + 1, max(W - CROP + stride - 1, 0) // stride + 1
        logits, count = img.new_zeros(1, CLASSES, H, W), img.new_zeros(1, 1, H, W)
        for h_idx in range(h_grids):
            for w_idx in range(w_grids):
                y1, x1 = h_idx * stride, w_idx * stride
                y2, x2 = min(y1 + CROP, H), min(x1 + CROP, W)
                y1, x1 = max(y2 - CROP, 0), max(x2 - CROP, 0)
                crop = original_encode_decode(sd, setting, img[:, :, y1:y2, x1:x2], dtype, uper)
                logits += F.pad(crop, (x1, W - x2, y1, H - y2))
                count[:, :, y1:y2, x1:x2] += 1
        logits = logits / count
    return F.interpolate(logits, size=(h, w), mode='bilinear', align_corners=False)[0]


def reference_uper(registry, sd: dict):
    uper, _ = uper_heads(registry)
    uper.load_state_dict({k[len('decode_head.'):]: v for k, v in sd.items() if k.startswith('decode_head.')})
    return uper.eval()


# ---- our side ----

def our_config(setting: str, mode: str = 'slide', **backbone) -> Config:
    """The recipe itself, shrunk: tiny arch at the crop's grid, 56 crops, heads narrowed."""
    recipe, taps, _ = SETTINGS[setting]
    cfg = Config.fromfile(str(RECIPES / recipe))
    arch = dict(embed_dims=WIDTH, num_layers=DEPTH, num_heads=HEADS, mlp_ratio=4.0, norm_type='rms', qk_norm=True,
                qkv_bias=False, layer_scale_init=0.1, patch_size=PATCH, img_size=224)
    cfg.model.backbone.arch = arch
    options = {'model.backbone.img_size': CROP, 'model.backbone.out_indices': taps,
               'model.backbone.pretrained': None, 'model.data_preprocessor.size': (CROP, CROP),
               'model.test_cfg': dict(mode=mode, crop_size=(CROP, CROP), stride=(42, 42), crop_batch_size=3),
               **{f'model.backbone.{k}': v for k, v in backbone.items()}}
    if setting == 'linear':
        options['model.decode_head.in_channels'] = WIDTH
    else:
        options |= {'model.decode_head.in_channels': [WIDTH] * 4, 'model.decode_head.channels': 16,
                    'model.auxiliary_head.in_channels': WIDTH, 'model.auxiliary_head.channels': 8}
    cfg.merge_from_dict(options)
    for pipeline in (cfg.test_pipeline, cfg.test_dataloader.dataset.pipeline):  # init_model's, the inferencer's
        assert pipeline[2].type == 'ResizeToMultiple'
        pipeline[1].scale = (4 * CROP, CROP)  # the recipe's (2016, 504), shrunk
    return cfg


def our_logits(cfg: Config, checkpoint: Path, image: np.ndarray) -> torch.Tensor:
    from mmseg.apis import inference_model, init_model
    model = init_model(cfg, str(checkpoint), device='cpu')
    with torch.no_grad():
        return inference_model(model, image).seg_logits.data


def save(sd: dict, path: Path) -> Path:
    torch.save(dict(sd), path)  # release.py: torch.save(checkpoint['module'], ...)
    return path


IMAGES = {'slide': (59, 83), 'whole': (50, 50)}  # neither side a multiple of 14


def image_of(size: tuple[int, int], seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


@pytest.mark.parametrize('setting,mode', [('linear', 'slide'), ('head', 'slide'), ('full', 'slide'),
                                          ('head', 'whole'), ('linear', 'whole')])
def test_a_release_predicts_what_the_original_predicts_in_fp32(registry, tmp_path, setting, mode):
    """fp32 on both sides (the frozen recipes' backbone_dtype set to fp32): the same logits."""
    from internvl_mmlab.cli import verify_checkpoint
    sd = original_release(setting, registry)
    path = save(sd, tmp_path / 'release.pth')
    cfg = our_config(setting, mode, **({'backbone_dtype': 'float32'} if SETTINGS[setting][2] else {}))
    assert verify_checkpoint(cfg, str(path)) is False  # every key placed, nothing missing
    image = image_of(IMAGES[mode])
    uper = reference_uper(registry, sd) if setting != 'linear' else None
    with torch.no_grad():
        expected = original_inference(sd, setting, image, mode, torch.float32, uper)
    ours = our_logits(cfg, path, image)
    assert ours.shape == expected.shape == (CLASSES, *IMAGES[mode])
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('setting', ['linear', 'head'])
def test_a_frozen_release_runs_in_bf16_as_released(registry, tmp_path, setting):
    """The frozen recipes as they are: the ViT's weights stay the released bf16 values and compute in
    bf16; the predictions match the original's bf16 inference (its FPN ran in bf16 too, ours in fp32)."""
    from mmseg.apis import init_model
    sd = original_release(setting, registry, seed=1)
    path = save(sd, tmp_path / 'release.pth')
    cfg = our_config(setting)
    model = init_model(cfg, str(path), device='cpu')
    vit = model.backbone.vit
    assert {p.dtype for p in vit.parameters()} == {torch.bfloat16}
    assert torch.equal(vit.blocks[1].attn.qkv.weight, sd['backbone.blocks.1.attn.qkv.weight'])
    assert {p.dtype for p in model.decode_head.parameters()} == {torch.float32}
    if setting == 'head':
        assert {p.dtype for p in model.backbone.fpn.parameters()} == {torch.float32}
    image = image_of(IMAGES['slide'], seed=4)
    uper = reference_uper(registry, sd) if setting != 'linear' else None
    with torch.no_grad():
        expected = original_inference(sd, setting, image, 'slide', torch.bfloat16, uper)
    ours = our_logits(cfg, path, image)
    scale = expected.abs().mean()
    assert (ours - expected).abs().mean() < 0.03 * scale, 'bf16 logits far from the original\'s'
    assert (ours.argmax(0) == expected.argmax(0)).float().mean() > 0.95


def test_a_pos_embed_of_another_grid_is_resampled_and_a_broken_one_refused(registry, tmp_path):
    from internvl.checkpoint import CheckpointError
    from internvl_mmlab.cli import verify_checkpoint
    sd = original_release('linear', registry, seed=2, grid=5)  # stored at a 5x5 grid, the config holds 4x4
    path = save(sd, tmp_path / 'grid5.pth')
    cfg = our_config('linear', 'whole', backbone_dtype='float32')
    verify_checkpoint(cfg, str(path))
    resampled = dict(sd)
    pos = sd['backbone.pos_embed'].float()
    grid = F.interpolate(pos[:, 1:].reshape(1, 5, 5, WIDTH).permute(0, 3, 1, 2), size=(4, 4), mode='bicubic',
                         align_corners=False).permute(0, 2, 3, 1).reshape(1, 16, WIDTH)
    resampled['backbone.pos_embed'] = torch.cat([pos[:, :1], grid], 1).to(torch.bfloat16)
    image = image_of(IMAGES['whole'])
    with torch.no_grad():
        expected = original_inference(resampled, 'linear', image, 'whole', torch.float32)
    torch.testing.assert_close(our_logits(cfg, path, image), expected, rtol=1e-3, atol=1e-3)

    broken = save({**sd, 'backbone.pos_embed': sd['backbone.pos_embed'][:, :20]}, tmp_path / 'broken.pth')
    with pytest.raises(CheckpointError, match=r'pos_embed has 20 entries'):
        verify_checkpoint(cfg, str(broken))


def test_a_release_without_its_frozen_backbone_takes_it_from_pretrained(registry, tmp_path):
    """Frozen ViT weights left out of the release: model.backbone.pretrained supplies them (here the
    original's backbone .pth, read through the core's loader), with the same predictions."""
    from internvl.checkpoint import CheckpointError
    from internvl_mmlab.cli import load_pretrained_backbone, verify_checkpoint
    from mmseg.apis import init_model
    sd = original_release('head', registry, seed=5)
    full = save(sd, tmp_path / 'full.pth')
    heads = save({k: v for k, v in sd.items() if not k.startswith(('backbone.blocks', 'backbone.pos_embed',
                  'backbone.cls_token', 'backbone.patch_embed'))}, tmp_path / 'heads.pth')
    vit = tmp_path / 'vit.pth'
    torch.save({'module': {k[len('backbone.'):]: v for k, v in sd.items()
                           if k.startswith('backbone.') and not k.startswith('backbone.up')}}, vit)
    cfg = our_config('head', backbone_dtype='float32')
    with pytest.raises(CheckpointError, match='set model.backbone.pretrained'):
        verify_checkpoint(cfg, str(heads))
    cfg.model.backbone.pretrained = str(vit)
    assert verify_checkpoint(cfg, str(heads)) is True
    model = init_model(cfg, str(heads), device='cpu')
    load_pretrained_backbone(model)
    reference = init_model(cfg, str(full), device='cpu')
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    trained = our_config('full')  # a trained ViT is the checkpoint's own: never the pretrained one
    trained.model.backbone.pretrained = str(vit)
    with pytest.raises(CheckpointError, match='the config trains it'):
        verify_checkpoint(trained, str(heads))


def test_convert_writes_an_mmseg_checkpoint_that_mmseg_loads(registry, tmp_path):
    """convert_checkpoint.py RELEASED OUT.pth (its conversion, in process; the tool itself in the test
    below) -> mmseg's init_model and MMSegInferencer load it with our config: the same weights, the
    ADE20K classes in its meta, the same prediction."""
    from mmseg.apis import MMSegInferencer, init_model
    from mmseg_custom import convert_original_release
    sd = original_release('linear', registry, seed=6)
    release = save(sd, tmp_path / 'release.pth')
    out = tmp_path / 'converted.pth'
    assert convert_original_release(str(release), str(out))
    assert not convert_original_release(str(save({'state_dict': sd}, tmp_path / 'ours.pth')), str(tmp_path / 'x.pth'))
    assert not (tmp_path / 'x.pth').exists()
    converted = torch.load(out, weights_only=True)
    assert set(converted) == {'state_dict', 'meta'}
    assert converted['meta']['dataset_meta']['classes'][0] == 'wall'
    assert converted['state_dict']['decode_head.bn.running_var'].equal(sd['decode_head.norm.running_var'])
    cfg = our_config('linear', 'whole', backbone_dtype='float32')
    model = init_model(cfg, str(out), device='cpu')
    assert model.dataset_meta['classes'][-1] == 'flag'
    image = image_of(IMAGES['whole'])
    with torch.no_grad():
        expected = original_inference(sd, 'linear', image, 'whole', torch.float32)
    inferencer = MMSegInferencer(model=cfg, weights=str(out), device='cpu')
    prediction = inferencer(image, return_datasamples=True)
    torch.testing.assert_close(prediction.seg_logits.data, expected, rtol=1e-4, atol=1e-4)


def test_a_layout_this_toolkit_does_not_build_is_named(registry, tmp_path):
    from internvl.checkpoint import CheckpointError
    from internvl_mmlab.cli import verify_checkpoint
    sd = original_release('head', registry)
    final_norm = save({**sd, 'backbone.up1.4.weight': torch.ones(WIDTH)}, tmp_path / 'final_norm.pth')
    with pytest.raises(CheckpointError, match=r'backbone\.up1\.4\.weight: a simple-FPN layer of the original '
                                              r'with_final_norm=True'):
        verify_checkpoint(our_config('head'), str(final_norm))
    stray = save({**sd, 'backbone.extra.weight': torch.ones(3)}, tmp_path / 'stray.pth')
    with pytest.raises(CheckpointError, match=r"unexpected keys \['backbone.extra.weight'\]"):
        verify_checkpoint(our_config('head'), str(stray))


@pytest.mark.slow
def test_a_release_holding_pickled_objects_is_refused_until_trusted(registry, tmp_path):
    """Weights only unless told: the file, the class and the way out are named; with --trust-pickled-code
    tools/convert_checkpoint.py writes the weights (the object set aside, the layout logged) as a file
    that needs no trust afterwards."""
    import argparse
    import subprocess
    import sys
    from internvl.checkpoint import UnsafeCheckpointError
    from internvl_mmlab.cli import verify_checkpoint
    sd = original_release('linear', registry, seed=7)
    path = save({**sd, 'args': argparse.Namespace(lr=4e-5)}, tmp_path / 'pickled.pth')
    cfg = our_config('linear', backbone_dtype='float32')
    with pytest.raises(UnsafeCheckpointError, match=r'pickled\.pth: refused to unpickle argparse\.Namespace.*'
                                                    r'--trust-pickled-code'):
        verify_checkpoint(cfg, str(path))
    out = tmp_path / 'trusted.safetensors'
    command = [sys.executable, 'tools/convert_checkpoint.py', str(path), str(out)]
    assert subprocess.run(command, cwd=REPO, capture_output=True, timeout=300).returncode == 1
    result = subprocess.run(command + ['--trust-pickled-code'], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "set aside 1 entries that are no tensors: ['args']" in result.stdout + result.stderr
    assert 'linear probe (FCNHead with_norm, norm -> bn)' in result.stdout + result.stderr
    assert verify_checkpoint(cfg, str(out)) is False
