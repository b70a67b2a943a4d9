"""The memory planner (mmseg_custom.analysis.memory): DeepSpeed's own estimators where they exist (bf16, all
parameters trained, stage 2 and 3), hand-computed cases where they do not (frozen parameters, fp32,
stage 1, buckets, offload), the precision read from a config's strategy, and the README's table."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmseg_custom  # noqa: F401
from mmseg_custom.analysis.memory import (BF16_ZERO, GIB, Buckets, Precision, model_state_bytes, plan_config,
                                    strategy_settings, table_row)

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / 'configs' / 'seg' / 'internvit'
N = 6_000_000_000  # parameters
FP32_ZERO = Precision(weights=4, grads=4, frozen=4, optimizer=16)


def test_bf16_agrees_with_deepspeed_estimators_for_the_6b_model():
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs
    from internvl import build_on_meta
    model = build_on_meta('internvit-6b-224px')
    total = sum(p.numel() for p in model.parameters())
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())
    for gpus_per_node, nodes in ((8, 1), (8, 2), (1, 1)):
        gpus = gpus_per_node * nodes
        for offload in (False, True):
            cpu, gpu = estimate_zero2_model_states_mem_needs(total, gpus_per_node, nodes, cpu_offload=offload)
            ours = model_state_bytes(total, 0, 2, gpus, BF16_ZERO, offload, gpus_per_node)
            assert ours.gpu_total == pytest.approx(gpu, abs=1)
            if offload:
                assert ours.cpu == pytest.approx(cpu, abs=1)
            cpu3, gpu3, _ = estimate_zero3_model_states_mem_needs(total, largest, gpus_per_node, nodes,
                                                                  cpu_offload=offload, cpu_offload_params=False)
            ours3 = model_state_bytes(total, 0, 3, gpus, BF16_ZERO, offload, gpus_per_node, largest)
            assert ours3.gpu_total == pytest.approx(gpu3, abs=1)
            if offload:
                assert ours3.cpu == pytest.approx(cpu3, abs=1)


def test_hand_computed_cases():
    # fp32 ZeRO-1 on 8 GPUs: 4 B weights + 4 B gradients (unsharded) + 16 B optimizer / 8
    states = model_state_bytes(N, 0, 1, 8, FP32_ZERO)
    assert (states.params, states.grads, states.optimizer) == (4 * N, 4 * N, 2 * N)
    # its bf16 twin: 2 + 2 + 16 / 8 per parameter - 4 bytes per parameter less, not the same figure
    bf16 = model_state_bytes(N, 0, 1, 8, BF16_ZERO)
    assert states.gpu_total - bf16.gpu_total == 4 * N
    # a frozen 6B backbone in bf16 beside 0.4B fp32 heads, plain DDP (stage 0, Adam m and v: 8 B)
    heads = 400_000_000
    ddp = model_state_bytes(heads, N, 0, 8, Precision(weights=4, grads=4, frozen=2, optimizer=8))
    assert (ddp.params, ddp.grads, ddp.optimizer, ddp.buckets) == (4 * heads + 2 * N, 4 * heads, 8 * heads, 0)
    # ZeRO-2 shards the gradients, ZeRO-3 the weights too (the largest layer gathered whole)
    zero2 = model_state_bytes(N, 0, 2, 8, BF16_ZERO)
    assert zero2.grads == 2 * N / 8 and zero2.optimizer == 16 * N / 8
    zero3 = model_state_bytes(N, 0, 3, 8, BF16_ZERO, largest_layer_params=1000)
    assert zero3.params == 2 * N / 8 + 2 * 1000 and zero3.grads == 2 * 1000
    # buckets: DeepSpeed's rule, 5e8 + 5e8 elements in 16 bit with overlap_comm = 4.5 x 2e9 bytes = 9 GB
    buckets = Buckets(reduce=5e8, allgather=5e8, overlap_comm=True)
    assert model_state_bytes(N, 0, 1, 8, BF16_ZERO, buckets=buckets).buckets == 9e9
    assert model_state_bytes(N, 0, 2, 8, FP32_ZERO, buckets=Buckets(5e8, 5e8, False)).buckets == 4e9
    assert model_state_bytes(N, 0, 3, 8, BF16_ZERO, buckets=Buckets(5e8, 5e8, True, prefetch=5e7)).buckets == \
        5e8 * 2 + 5e7 * 2
    # optimizer offload: nothing of the optimizer or the gradients stays on the GPU (stages 1, 2)
    offloaded = model_state_bytes(N, 0, 1, 8, BF16_ZERO, offload_optimizer=True)
    assert (offloaded.grads, offloaded.optimizer) == (0, 0) and offloaded.cpu > 0
    with pytest.raises(ValueError, match='ZeRO stage 4'):
        model_state_bytes(N, 0, 4, 8)


@pytest.fixture(scope='module')
def scope():
    init_default_scope('mmseg')


def test_precision_comes_from_the_strategy(scope):
    """The fp32-weight ZeRO-2 recipe and the bf16 one get different figures; a frozen backbone counts as
    bf16 weights only; the buckets are the recipe's."""
    cache: dict = {}
    base = 'upernet_internvit-6b-224px_8xb2-80k_ade20k-504x504'
    bf16 = plan_config(Config.fromfile(str(RECIPES / f'{base}_ds-zero2-bf16.py')), activation_cache=cache)
    amp = plan_config(Config.fromfile(str(RECIPES / f'{base}_ds-zero2-amp.py')), activation_cache=cache)
    assert bf16.precision.weights == 2 and amp.precision.weights == 4
    assert amp.states.params == pytest.approx(2 * bf16.states.params)
    assert amp.states.buckets == pytest.approx(2 * bf16.states.buckets) == pytest.approx(4.5 * 1e9 * 4)
    frozen = plan_config(Config.fromfile(str(RECIPES / 'upernet_internvit-6b-224px-frozen_8xb2-80k_ade20k-504x504.py')),
                         activation_cache=cache)
    assert frozen.stage == 0 and frozen.precision.frozen == 2 and frozen.precision.optimizer == 8
    stage, half, offload, buckets = strategy_settings(Config.fromfile(str(RECIPES / f'{base}.py')))
    assert (stage, half, offload, buckets.overlap_comm, buckets.reduce) == (1, True, False, True, 5e8)


def readme_table() -> dict[str, str]:
    text = (REPO / 'README.md').read_text().split('### Memory plan of every 6B segmentation recipe')[1].split('\n#')[0]
    return {m.group(1): m.group(0) for m in re.finditer(r'^\| `([^`]+\.py)` \|.*\|$', text, re.M)}


def test_readme_table_is_the_planners_verdict_for_every_6b_recipe(scope):
    rows = readme_table()
    recipes = sorted(p for p in RECIPES.glob('*6b*.py'))
    assert sorted(rows) == [p.name for p in recipes]
    cache: dict = {}
    for path in recipes:
        plan = plan_config(Config.fromfile(str(path)), gpus=8, gpu_mem=80, activation_cache=cache)
        assert rows[path.name] == table_row(path.name, plan)
        trains_backbone = '-frozen' not in path.name
        if trains_backbone:  # every recipe that trains the 6B backbone: DeepSpeed, and it fits with headroom
            assert Config.fromfile(str(path)).strategy.type == 'SafeDeepSpeedStrategy'
        assert plan.fits and plan.total < 0.9 * 80 * GIB, path.name


@pytest.mark.parametrize('config', ['det/internvit/mask-rcnn_internvit-6b-224px-frozen_8xb2-1x_coco.py',
                                    'seg/vit_adapter/upernet_internvit-adapter-6b-224px-frozen_8xb2-80k_ade20k-512x512.py'])
def test_configs_the_planner_does_not_model_are_refused_clearly(config):
    result = subprocess.run([sys.executable, 'tools/analysis/estimate_memory.py', f'configs/{config}'],
                            capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert 'error: the memory planner' in result.stderr
