"""Each breakage of this stack, with what fixes it (a workaround in ``internvl_mmlab.compat``, or a
registered subclass of ``internvl_mmlab.engine``): the mmengine path works with our layer, and (so that
this test fails if the fix is dropped, and tells us when upstream has fixed it) still fails with
mmengine as shipped."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCENARIOS = Path(__file__).resolve().parents[1] / 'helpers' / 'compat_scenarios.py'

# scenario -> text of the failure mmengine as shipped shows
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
    env['PYTHONPATH'] = os.pathsep.join([str(SCENARIOS.parents[2]), env.get('PYTHONPATH', '')])
    return subprocess.run([sys.executable, str(SCENARIOS), name, *extra], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.mark.parametrize('name', sorted(CASES))
def test_workaround(name):
    fixed = run(name)
    assert fixed.returncode == 0 and 'scenario passed' in fixed.stdout, fixed.stderr[-3000:]
    broken = run(name, '--upstream')
    assert broken.returncode != 0, f'mmengine no longer needs the {name!r} fix'
    assert CASES[name] in broken.stderr, broken.stderr[-3000:]


def test_nccl_without_a_gpu_is_an_error_not_gloo():
    fixed = run('init_dist_nccl')
    assert fixed.returncode == 0 and 'scenario passed' in fixed.stdout, fixed.stderr[-3000:]


def test_apply_is_idempotent():
    import internvl_mmlab
    from mmengine.dist import utils
    before = utils._init_dist_pytorch
    internvl_mmlab.compat.apply()
    assert utils._init_dist_pytorch is before


def test_a_workaround_for_other_versions_is_not_applied_and_says_so(monkeypatch, caplog):
    from internvl_mmlab import compat
    calls = []

    def old_workaround() -> None:
        calls.append(1)

    monkeypatch.setattr(compat, 'WORKAROUNDS', {old_workaround: (('mmengine', '0.7.0'),), **compat.WORKAROUNDS})
    with caplog.at_level('WARNING'):
        compat.apply()
    assert not calls and 'old_workaround is for mmengine 0.7.0; not applied' in caplog.text
    assert compat._version_matches('mmengine', '0.10.7') and compat._version_matches('deepspeed', '>=0.19.7')
