"""Each workaround in mmengine_custom.compat: the mmengine path it fixes works with it, and (so that
this test fails if the workaround is dropped, and tells us when upstream has fixed it) still fails
without it."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCENARIOS = Path(__file__).with_name('compat_scenarios.py')

# scenario -> text of the failure mmengine shows without the workaround
CASES = {
    'checkpoint': 'Weights only load failed',
    'deepspeed': "No module named 'deepspeed.runtime.fp16.onebit'",
    'init_dist': 'torch.cuda.set_device',
    'ddp': 'device_ids',
    'amp': 'only available training on gpu',
    'fsdp': "unhashable type: 'dict'",
}


def run(name: str, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, 'CUDA_VISIBLE_DEVICES': ''}
    env['PYTHONPATH'] = os.pathsep.join([str(SCENARIOS.parents[1]), env.get('PYTHONPATH', '')])
    return subprocess.run([sys.executable, str(SCENARIOS), name, *extra], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.mark.parametrize('name', sorted(CASES))
def test_workaround(name):
    fixed = run(name)
    assert fixed.returncode == 0 and 'scenario passed' in fixed.stdout, fixed.stderr[-3000:]
    broken = run(name, '--without-compat')
    assert broken.returncode != 0, f'mmengine no longer needs the {name!r} workaround'
    assert CASES[name] in broken.stderr, broken.stderr[-3000:]


def test_nccl_without_a_gpu_is_an_error_not_gloo():
    fixed = run('init_dist_nccl')
    assert fixed.returncode == 0 and 'scenario passed' in fixed.stdout, fixed.stderr[-3000:]


def test_apply_is_idempotent():
    import mmengine_custom
    from mmengine.dist import utils
    before = utils._init_dist_pytorch
    mmengine_custom.compat.apply()
    assert utils._init_dist_pytorch is before
