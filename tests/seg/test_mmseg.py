"""InternViT through mmseg's registry, loaded from a published checkpoint layout."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.utils import import_modules_from_strings

from internvl import InternViT
from reference import make_reference, our_arch, reference_block_outputs, write_all_formats


@pytest.fixture(scope='module')
def registry():
    cfg = Config(dict(custom_imports=dict(imports=['mmseg_custom'], allow_failed_imports=False)))
    import_modules_from_strings(**cfg.custom_imports)
    init_default_scope('mmseg')
    from mmseg.registry import MODELS
    return MODELS


@pytest.mark.parametrize('variant', ['rms', 'ln'])
def test_build_from_registry_matches_transformers(registry, tmp_path, variant):
    ref = make_reference(variant, seed=5)
    paths = write_all_formats(ref, variant, tmp_path)
    backbone = registry.build(dict(type='InternViT', arch=our_arch(variant), out_indices=[2, 0],
                                   pretrained=str(paths['opengvlab dir'])))
    backbone.init_weights()
    backbone.eval()
    images = torch.randn(2, 3, 56, 98)
    with torch.no_grad():
        outs = backbone(images)
    expected = reference_block_outputs(ref, images)
    assert isinstance(outs, tuple) and len(outs) == 2
    for out, want in zip(outs, [expected[2], expected[0]]):
        assert out.dtype == torch.float32 and out.shape == (2, 64, 4, 7)
        assert ((out - want).norm() / want.norm()).item() < 1e-4


def test_preset_name_and_bad_arguments(registry):
    backbone = registry.build(dict(type='InternViT', arch='internvit-tiny-rms', out_indices=(1,)))
    assert backbone.vit.arch_name == 'internvit-tiny-rms'
    with pytest.raises(ValueError, match='unknown InternViT arch'):
        registry.build(dict(type='InternViT', arch='internvit-huge'))
    with pytest.raises(ValueError, match='either pretrained=PATH or init_cfg'):
        registry.build(dict(type='InternViT', arch='internvit-tiny-rms', pretrained='x',
                            init_cfg=dict(type='Pretrained', checkpoint='x')))


def test_trains_inside_an_mmseg_segmentor(registry):
    """The backbone drives mmseg's own EncoderDecoder + FCNHead through a loss and backward pass."""
    from mmseg.structures import SegDataSample
    from mmengine.structures import PixelData
    model = registry.build(dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', size=(56, 56), pad_val=0, seg_pad_val=255),
        backbone=dict(type='InternViT', arch='internvit-tiny-ln', out_indices=[2]),
        decode_head=dict(type='FCNHead', in_channels=64, channels=32, num_convs=1, num_classes=4,
                         norm_cfg=dict(type='BN', requires_grad=True),
                         loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0))))
    samples = []
    for _ in range(2):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.randint(0, 4, (1, 56, 56)))
        s.set_metainfo(dict(img_shape=(56, 56), ori_shape=(56, 56), pad_shape=(56, 56)))
        samples.append(s)
    data = model.data_preprocessor(dict(inputs=[torch.rand(3, 56, 56) * 255] * 2, data_samples=samples), True)
    losses = model(**data, mode='loss')
    losses['decode.loss_ce'].backward()
    assert model.backbone.vit.blocks[0].attn.qkv.weight.grad.abs().sum() > 0


# --- segmentation pieces ---------------------------------------------------------------------------

DEMO_CONFIG = Path(__file__).resolve().parents[2] / 'configs' / 'seg' / 'demo' / \
    'upernet_internvit-tiny_1xb8-500it_synthetic-ade-112x112.py'


def test_batched_slide_inference_equals_mmseg(registry):
    """Crops encoded in batches give mmseg's own sliding-window result (also with a partial last batch)."""
    cfg = dict(
        data_preprocessor=dict(type='SegDataPreProcessor'),
        backbone=dict(type='InternViT', arch='internvit-tiny-ln', out_indices=[0, 1, 2, 2], with_fpn=True),
        decode_head=dict(type='UPerHead', in_channels=[64] * 4, in_index=[0, 1, 2, 3], channels=16,
                         num_classes=5, norm_cfg=dict(type='BN')),
        test_cfg=dict(mode='slide', crop_size=(56, 56), stride=(42, 42), crop_batch_size=4))
    from mmengine.config import ConfigDict
    ours = registry.build(ConfigDict(cfg, type='BatchedSlideEncoderDecoder')).eval()
    theirs = registry.build(ConfigDict(cfg, type='EncoderDecoder')).eval()
    theirs.load_state_dict(ours.state_dict())
    images = torch.randn(2, 3, 98, 154)
    metas = [dict(img_shape=(98, 154), ori_shape=(98, 154), pad_shape=(98, 154))] * 2
    with torch.no_grad():
        torch.testing.assert_close(ours.slide_inference(images, [dict(m) for m in metas]),
                                   theirs.slide_inference(images, [dict(m) for m in metas]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('mode', ['whole', 'slide'])
def test_any_image_size_through_whole_and_slide_inference(registry, mode):
    """Sizes that are not multiples of the patch, and a side under the crop (a 4:1 panorama at a 56px
    crop): predictions of the image's own size, each crop's logits those of the crop padded to the patch
    and cropped back."""
    from mmengine.config import ConfigDict
    from mmseg.structures import SegDataSample
    cfg = ConfigDict(
        type='BatchedSlideEncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor'),
        backbone=dict(type='InternViT', arch='internvit-tiny-ln', out_indices=[0, 1, 2, 2], with_fpn=True),
        decode_head=dict(type='UPerHead', in_channels=[64] * 4, in_index=[0, 1, 2, 3], channels=16,
                         num_classes=5, norm_cfg=dict(type='BN')),
        test_cfg=dict(mode=mode, crop_size=(56, 56), stride=(42, 42)))
    model = registry.build(cfg).eval()
    for height, width in ((45, 180), (61, 57), (13, 29)):
        images = torch.randn(1, 3, height, width)
        meta = dict(img_shape=(height, width), ori_shape=(height, width), pad_shape=(height, width))
        with torch.no_grad():
            result = model.predict(images, [SegDataSample(metainfo=meta)])[0]
            assert result.pred_sem_seg.data.shape == (1, height, width)
            padded = torch.nn.functional.pad(images, (0, -width % 14, 0, -height % 14))
            by_hand = model.encode_decode(padded, [dict(meta, img_shape=padded.shape[2:])])
            torch.testing.assert_close(model.encode_decode(images, [meta]), by_hand[..., :height, :width])


def test_frozen_bf16_backbone_stays_bit_identical_while_heads_train(registry, tmp_path):
    from mmengine.hooks import Hook
    from mmengine.runner import Runner
    from internvl import InternViT
    from mmseg_custom.datasets import write_synthetic_ade
    write_synthetic_ade(tmp_path / 'data', num_train=8, num_val=2, size=112)
    cfg = Config.fromfile(str(DEMO_CONFIG))
    vit = InternViT(dict(cfg.model.backbone.arch))
    torch.save(vit.state_dict(), tmp_path / 'vit.pth')
    cfg.merge_from_dict({
        'model.backbone.frozen': True, 'model.backbone.backbone_dtype': 'bfloat16',
        'model.backbone.drop_path_rate': 0.2, 'model.backbone.pretrained': str(tmp_path / 'vit.pth'),
        'train_dataloader.dataset.data_root': str(tmp_path / 'data'),
        'val_dataloader.dataset.data_root': str(tmp_path / 'data'),
        'train_dataloader.batch_size': 2, 'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False, 'val_dataloader.num_workers': 0,
        'val_dataloader.persistent_workers': False,
        'train_cfg.max_iters': 3, 'train_cfg.val_interval': 100,
        'default_hooks.checkpoint.interval': 100, 'work_dir': str(tmp_path / 'work')})
    cfg.test_dataloader = cfg.val_dataloader

    class Snapshot(Hook):
        def before_train(self, runner):
            self.heads = {k: v.clone() for k, v in runner.model.state_dict().items() if 'head' in k}

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            self.modes = (runner.model.backbone.vit.training, runner.model.decode_head.training)

    snapshot = Snapshot()
    runner = Runner.from_cfg(cfg)
    runner.register_hook(snapshot)
    runner.train()
    model = runner.model
    assert snapshot.modes == (False, True)  # while training: the frozen ViT in eval mode, the heads not
    trained = model.backbone.vit.state_dict()
    for key, value in vit.state_dict().items():
        assert trained[key].dtype == torch.bfloat16
        assert torch.equal(trained[key], value.to(torch.bfloat16)), key
    changed = [k for k, v in model.state_dict().items()
               if k in snapshot.heads and not torch.equal(v, snapshot.heads[k])]
    assert any(k.startswith('decode_head.') and k.endswith('weight') for k in changed)
    assert any(k.startswith('auxiliary_head.') for k in changed)
    with torch.no_grad():
        feats = model.backbone(torch.randn(1, 3, 112, 112))
    assert all(f.dtype == torch.float32 for f in feats)


def test_trained_backbone_in_bf16_keeps_fp32_weights_and_hands_on_bf16_features(registry):
    """Autocast with fp32 weights; the features stay in bf16 (the segmentor casts them for the heads)."""
    backbone = registry.build(dict(type='InternViT', arch='internvit-tiny-rms', backbone_dtype='bfloat16',
                                   out_indices=[0, 2]))
    backbone.init_weights()
    backbone.train()
    reference = InternViT('internvit-tiny-rms', out_indices=[0, 2])
    reference.load_state_dict(backbone.vit.state_dict())
    images = torch.randn(2, 3, 56, 56)
    outs = backbone(images)
    assert backbone.vit.pos_embed.dtype == torch.float32 and all(o.dtype == torch.bfloat16 for o in outs)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        expected = reference(images)
    for out, want in zip(outs, expected):  # computed in bf16: close to, not equal to, the fp32 result
        torch.testing.assert_close(out, want)
    outs[-1].sum().backward()
    assert backbone.vit.blocks[0].attn.qkv.weight.grad.dtype == torch.float32
    backbone.eval()  # validation: bf16 activations meet fp32 weights on the in-place paths too
    with torch.no_grad():
        for out, want in zip(backbone(images), expected):
            torch.testing.assert_close(out, want)


def test_bad_backbone_arguments(registry):
    with pytest.raises(ValueError, match="backbone_dtype='int8'"):
        registry.build(dict(type='InternViT', arch='internvit-tiny-rms', backbone_dtype='int8'))
    with pytest.raises(ValueError, match=r'with_fpn=True needs 1 out index .* or 4'):
        registry.build(dict(type='InternViT', arch='internvit-tiny-rms', with_fpn=True, out_indices=[1, 2]))
    with pytest.raises(ValueError, match=r"norm='GN'; expected one of \['LN', 'BN'\]"):
        registry.build(dict(type='InternViT', arch='internvit-tiny-rms', with_fpn=True, fpn_norm='GN'))


@pytest.mark.parametrize('norm', ['LN', 'BN'])
def test_simple_fpn_norm_and_the_published_initialisation(norm):
    """The simple FPN's norm between its two stride-4 transposed convolutions (LayerNorm2d in fp32 as
    published, or BatchNorm2d), and the published models' init: normal weights of std
    sqrt(2 / (kernel area x out channels)), zero biases."""
    from internvl.models import SimpleFPN
    from internvl.models.norms import LayerNorm2d
    torch.manual_seed(0)
    fpn = SimpleFPN(256, norm=norm)
    assert isinstance(fpn.up4[1], LayerNorm2d if norm == 'LN' else torch.nn.BatchNorm2d)
    for deconv in (fpn.up4[0], fpn.up4[3], fpn.up2):
        assert deconv.weight.std().item() == pytest.approx((2 / (4 * 256)) ** 0.5, rel=0.02)
        assert not deconv.bias.any()


def test_with_fpn_from_one_block_gives_the_four_vitdet_scales(registry):
    """ViTDet: one tapped block -> strides p/4, p/2, p, 2p (4, 8, 16, 32 for patch 16), embed_dims channels."""
    arch = dict(embed_dims=64, num_layers=2, num_heads=4, mlp_ratio=4.0, norm_type='rms', qk_norm=True, qkv_bias=False,
                layer_scale_init=0.1, patch_size=16, img_size=64)
    backbone = registry.build(dict(type='InternViT', arch=arch, with_fpn=True, out_indices=[-1], window_size=2,
                                   use_cls_token=False)).eval()
    with torch.no_grad():
        outs = backbone(torch.randn(1, 3, 96, 128))
    assert [tuple(o.shape) for o in outs] == [(1, 64, 96 // s, 128 // s) for s in (4, 8, 16, 32)]
