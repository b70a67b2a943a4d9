"""FLOPs: fvcore with the attention handle against the analytic count of InternViT and torch's
FlopCounterMode, and tools/analysis/get_flops.py on segmentation and detection configs."""
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from internvl.models import build_on_meta
from internvl.analysis.flops import SDPA_OP, flop_analysis, torch_flops, vit_flops, without_weights

REPO = Path(__file__).resolve().parents[2]


def counts(arch: str, height: int, width: int, **kwargs) -> tuple[int, int, int]:
    """(fvcore, analytic, FlopCounterMode / 2) for InternViT ``arch`` on one image."""
    model = build_on_meta(arch, **kwargs)
    by_torch = torch_flops(model, (torch.empty(1, 3, height, width, device='meta'),))
    model = without_weights(model)
    by_fvcore = flop_analysis(model, (torch.zeros(1, 3, height, width),)).total()
    analytic = vit_flops(model.arch, height, width, window_size=kwargs.get('window_size', 0),
                         global_attn_indexes=kwargs.get('global_attn_indexes', ()),
                         use_cls_token=kwargs.get('use_cls_token', True))
    return by_fvcore, analytic, by_torch


@pytest.mark.parametrize('size, kwargs', [
    ((56, 56), {}),
    ((70, 98), dict(window_size=3, global_attn_indexes=[1])),  # windows padded: 5x7 patches -> 2x3 windows
    ((56, 84), dict(window_size=2, use_cls_token=False)),
])
def test_tiny_counts_agree_exactly(size, kwargs):
    by_fvcore, analytic, by_torch = counts('internvit-tiny-rms', *size, **kwargs)
    assert by_fvcore == analytic == by_torch


def test_fvcore_adds_five_flops_per_layernorm_element():
    by_fvcore, analytic, by_torch = counts('internvit-tiny-ln', 70, 42)
    tokens, width, blocks = 1 + 5 * 3, 64, 3
    assert by_torch == analytic and by_fvcore - analytic == 5 * tokens * width * 2 * blocks


def test_attention_is_counted_only_with_the_handle():
    model = without_weights(build_on_meta('internvit-tiny-rms'))
    image = torch.zeros(1, 3, 56, 56)
    with_handle = flop_analysis(model, (image,)).total()
    analysis = flop_analysis(model, (image,))
    analysis._op_handles.pop(SDPA_OP)  # fvcore's own default: no handle for SDPA
    tokens, width, blocks = 17, 64, 3
    assert with_handle - analysis.total() == blocks * 2 * tokens * tokens * width


def test_6b_at_224_agrees_with_the_analytic_count_and_torch():
    by_fvcore, analytic, by_torch = counts('internvit-6b-224px', 224, 224)
    assert abs(by_fvcore / analytic - 1) < 0.01 and abs(by_torch / analytic - 1) < 0.01
    assert 1.5e12 < by_fvcore < 1.6e12


def get_flops(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, 'tools/analysis/get_flops.py', *args], capture_output=True, text=True,
                          cwd=REPO, timeout=1200, env={**os.environ, 'PYTHONPATH': str(REPO)})


def summary(stdout: str) -> tuple[float, float, float, float]:
    params = re.search(r'^Params: ([\d.]+) M \(trainable ([\d.]+) M, frozen ([\d.]+) M\)$', stdout, re.M)
    flops = re.search(r'^FLOPs: ([\d.]+) G$', stdout.splitlines()[-1])
    assert params and flops, stdout
    return float(flops.group(1)), *map(float, params.groups())


def test_tool_counts_the_6b_backbone_of_a_frozen_recipe_without_its_weights():
    config = 'configs/seg/internvit/upernet_internvit-6b-224px-frozen_8xb2-80k_ade20k-504x504.py'
    out = get_flops(config, '--shape', '224', '224', '--module', 'backbone.vit', '--depth', '1')
    assert out.returncode == 0, out.stderr
    flops, total, trainable, frozen = summary(out.stdout)
    analytic = vit_flops(build_on_meta('internvit-6b-224px').arch, 224, 224)
    assert abs(flops * 1e9 / analytic - 1) < 0.01
    # the frozen 6B ViT: 5.903B parameters at the pretraining grid, its position embedding held at 504's 36 x 36
    held = sum(p.numel() for p in build_on_meta('internvit-6b-224px', img_size=504).parameters()) / 1e6
    assert trainable == 0 and abs(frozen - held) < 0.01 and abs(held - 5903 - (36 ** 2 - 16 ** 2) * 3200 / 1e6) < 1
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2 ** 20
    assert peak_gib < 8, f'{peak_gib:.1f} GiB: the 6B weights alone would take 22 GiB in fp32'


def test_tool_on_the_segmentation_and_detection_demos():
    seg = get_flops('configs/seg/demo/upernet_internvit-tiny_1xb8-500it_synthetic-ade-112x112.py', '--shape', '112',
                    '--depth', '1')
    assert seg.returncode == 0, seg.stderr
    flops, total, trainable, frozen = summary(seg.stdout)
    assert '| backbone ' in seg.stdout and '| decode_head ' in seg.stdout and frozen == 0
    det = get_flops('configs/det/demo/mask-rcnn_internvit-tiny_1xb4-12e_synthetic-coco-128x128.py', '--shape', '128',
                    '128', '--module', 'backbone')
    assert det.returncode == 0, det.stderr
    flops, *_ = summary(det.stdout)
    model = build_on_meta(dict(embed_dims=96, num_layers=4, num_heads=3, mlp_ratio=4.0, norm_type='rms',
                               qk_norm=True, qkv_bias=False, layer_scale_init=0.1, patch_size=16, img_size=128),
                          window_size=4, global_attn_indexes=[1, 3], use_cls_token=False)
    vit = vit_flops(model.arch, 128, 128, window_size=4, global_attn_indexes=[1, 3], use_cls_token=False)
    assert flops * 1e9 > vit  # the ViT (windowed, no cls token) plus the simple FPN


def test_tool_names_an_unknown_module():
    out = get_flops('configs/seg/demo/upernet_internvit-tiny_1xb8-500it_synthetic-ade-112x112.py', '--shape', '112',
                    '--module', 'head')
    assert out.returncode == 1
    assert "--module 'head': the model has no such submodule" in out.stderr and 'decode_head' in out.stderr


def test_the_shape_defaults_to_what_the_config_trains_on():
    """The 504 recipes count at 504 (not 512), the COCO ones at their 1333 x 800 resize."""
    import internvl_mmlab  # noqa: F401
    from internvl_mmlab.analysis.flops import config_shape
    from internvl_mmlab.cli import load_config
    assert config_shape(load_config('configs/seg/internvit/linear_internvit-6b-224px_8xb2-80k_ade20k-504x504.py')) == \
        (504, 504)
    assert config_shape(load_config('configs/det/internvit/mask-rcnn_internvit-6b-224px_8xb2-1x_coco.py')) == \
        (800, 1333)
    out = get_flops('configs/seg/demo/upernet_internvit-tiny_1xb8-500it_synthetic-ade-112x112.py', '--module', 'backbone')
    assert out.returncode == 0 and 'Input: 1 x 3 x 112 x 112' in out.stdout, out.stderr[-2000:]


@pytest.mark.parametrize('config', ['upernet_internvit-tiny_1xb8-500it_synthetic-ade-112x112.py',
                                    'mask-rcnn_internvit-tiny_1xb4-12e_synthetic-coco-128x128.py'])
def test_one_block_per_kind_counts_what_the_full_trace_counts(config):
    """Tracing one block per kind (global / windowed; the detection demo has both) and giving its count
    to the other blocks of its kind equals tracing them all, module by module, and the table agrees."""
    from fvcore.nn import flop_count_table
    import internvl_mmlab  # noqa: F401
    from internvl_mmlab.analysis.flops import build_without_weights
    from mmdet_custom.analysis import detection_samples
    from internvl_mmlab.cli import load_config
    from internvl.analysis.flops import block_per_kind_analysis, flop_analysis
    model, _, task = build_without_weights(load_config(f'configs/{"seg" if config.startswith("upernet") else "det"}/demo/{config}'))
    samples = detection_samples((112, 112)) if task == 'mmdet' else None
    model.forward = lambda inputs: model._forward(inputs, samples)
    images = (torch.zeros(1, 3, 112, 112),)
    full, scaled = flop_analysis(model, images), block_per_kind_analysis(model, images)
    assert len(scaled.repeats) >= 2
    expected = {k: v for k, v in full.by_module().items() if v}
    assert {k: v for k, v in scaled.by_module().items() if v} == expected
    assert flop_count_table(scaled, max_depth=4) == flop_count_table(full, max_depth=4)
