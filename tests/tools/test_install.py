"""The installed stack is the one ENVIRONMENT.md verified, and the install step is idempotent."""
import importlib.metadata as md
import subprocess
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]


def test_pinned_stack():
    versions = {name: md.version(name) for name in
                ('torch', 'torchvision', 'mmengine', 'mmcv', 'mmsegmentation', 'mmdet', 'deepspeed',
                 'transformers', 'safetensors')}
    assert versions['torch'].startswith('2.14.1') and versions['torchvision'].startswith('0.29.1')
    assert versions['mmcv'] == '2.1.0' and versions['mmengine'] == '0.10.7'
    assert versions['mmsegmentation'] == '1.2.2' and versions['mmdet'] == '3.3.0'
    setuptools_major = int(md.version('setuptools').split('.')[0])
    assert setuptools_major < 82  # pkg_resources, needed by mmengine's `mmseg::` config inheritance
    import pkg_resources  # noqa: F401


def test_mmcv_compiled_ops_run_on_cpu():
    from mmcv.ops import nms, roi_align
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], dtype=torch.float32)
    _, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), iou_threshold=0.5)
    assert keep.tolist() == [0, 2]
    out = roi_align(torch.arange(16.).view(1, 1, 4, 4), torch.tensor([[0, 0, 0, 4, 4.]]), (2, 2), 1.0, 2)
    assert out.shape == (1, 1, 2, 2)


def test_install_step_is_idempotent():
    result = subprocess.run(['bash', str(REPO / 'tools' / 'install_env.sh')], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ''  # the stamp matched: nothing was reinstalled
