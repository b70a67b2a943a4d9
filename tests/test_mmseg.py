"""InternViT through mmseg's registry, loaded from a published checkpoint layout."""
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.utils import import_modules_from_strings

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
