"""Running recipes one training and validation step each on the CPU (``recipe_step.py`` in a fresh
process), and what the step saw, for the precision tests of segmentation and detection."""
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple, Optional

REPO = Path(__file__).resolve().parents[2]


class Step(NamedTuple):
    """What tests/recipe_step.py saw of one recipe: its training step, and the dtypes that reached the
    ViT's blocks and mmcv's kernels in that step and the validation after it."""
    loss: float
    backbone_changed: bool
    features_dtype: str
    loss_scale: Optional[float]
    dtypes: dict[str, set[str]]


def run_steps(data: Path, work: Path, specs: list[str]) -> dict[str, Step]:
    env = {**os.environ, 'CUDA_VISIBLE_DEVICES': '', 'PYTHONPATH': os.pathsep.join([str(REPO), str(REPO / 'tests' / 'helpers')])}
    result = subprocess.run([sys.executable, str(REPO / 'tests' / 'helpers' / 'recipe_step.py'), str(data), str(work), *specs],
                            capture_output=True, text=True, env=env, cwd=REPO, timeout=3000)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    steps = re.findall(r'^STEP (\S+) loss=(\S+) backbone_changed=(\w+) dtype=(\S+) loss_scale=(\S+) skipped=\d+$',
                       result.stdout, re.M)
    seen = dict(re.findall(r'^DTYPES (\S+) ?(.*)$', result.stdout, re.M))
    assert sorted(seen) == sorted(name for name, *_ in steps), result.stdout[-3000:]  # each recipe validated
    return {name: Step(float(loss), changed == 'True', dtype, None if scale == 'None' else float(scale),
                       {op: set(dtypes.split(',')) for op, dtypes in (item.split('=') for item in seen[name].split())})
            for name, loss, changed, dtype, scale in steps}
