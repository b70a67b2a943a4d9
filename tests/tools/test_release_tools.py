"""What a user runs on a released segmentor: tools/test.py takes the original's bare state dict as it was
published (auto-detected, strictly mapped), tests it with multi-scale + flip (--tta), prints mmseg's
per-class table and writes it as CSV; tools/infer.py writes image | ground truth | prediction with a
legend; the detection picture likewise (image | ground-truth boxes | detections)."""
import csv
import math
import re

import numpy as np
import pytest
import torch
from PIL import Image

from test_tools import CONFIG, DET_CONFIG, tool


def to_original_layout(state_dict: dict) -> dict:
    """Our segmentor's keys under the names the original InternViT6B / FCNHead had (its release.py saved
    them bare): backbone.vit.* -> backbone.*, fpn.up4 -> up1, fpn.up2 -> up2.0; ViT and FPN in bf16."""
    out = {}
    for key, value in state_dict.items():
        key = key.replace('backbone.vit.', 'backbone.').replace('backbone.fpn.up4.', 'backbone.up1.')
        key = re.sub(r'^backbone\.fpn\.up2\.', 'backbone.up2.0.', key)
        out[key] = value.to(torch.bfloat16) if key.startswith('backbone.') else value
    return out


@pytest.fixture(scope='module')
def release(tmp_path_factory):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    import mmseg_custom  # noqa: F401
    from mmseg.registry import MODELS
    from mmseg_custom.datasets import write_synthetic_ade
    root = tmp_path_factory.mktemp('release')
    data = write_synthetic_ade(root / 'data', num_train=1, num_val=2, size=112)
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(str(CONFIG)).model)
    path = root / 'upernet_release.pth'
    torch.save(to_original_layout(model.state_dict()), path)
    return data, path


@pytest.mark.slow
def test_test_py_takes_a_release_with_tta_and_writes_the_per_class_table(release, tmp_path):
    data, path = release
    csv_file = tmp_path / 'classes.csv'
    result = tool('tools/test.py', str(CONFIG), str(path), '--tta', '--per-class-csv', str(csv_file), '--work-dir',
                  str(tmp_path / 'w'), '--cfg-options', f'test_dataloader.dataset.data_root={data}')
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert "OpenGVLab's released segmentor (mmseg 0.x, a bare state dict): InternViT (4 blocks" in log
    assert 'per class results:' in log and re.search(r'\|\s+wall\s+\|', log)  # mmseg's table, on the console
    miou = float(re.search(r'metrics: .*mIoU: ([\d.]+)', log).group(1))
    with open(csv_file) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ['class', 'IoU', 'Acc'] and len(rows) == 151 and rows[1][0] == 'wall'
    ious = [float(r[1]) for r in rows[1:] if not math.isnan(float(r[1]))]
    assert sum(ious) / len(ious) == pytest.approx(miou, abs=0.01)  # the table's mean is the printed mIoU


@pytest.mark.slow
def test_infer_writes_image_ground_truth_and_prediction_with_a_legend(release, tmp_path):
    data, path = release
    image = data / 'images' / 'validation' / 'ADE_val_00000001.jpg'
    labels = data / 'annotations' / 'validation' / 'ADE_val_00000001.png'
    out = tmp_path / 'picture.png'
    result = tool('tools/infer.py', str(image), str(CONFIG), str(path), '--gt', str(labels), '--out', str(out),
                  '--scale', '2', '--opacity', '1.0')
    assert result.returncode == 0, result.stderr[-3000:]
    picture = np.asarray(Image.open(out).convert('RGB'))
    margin, title = 6, 14 + 12
    assert picture.shape[1] == 3 * 224 + 4 * margin and picture.shape[0] > title + 224 + 14  # a legend row below
    original = np.asarray(Image.open(image).convert('RGB').resize((224, 224), Image.NEAREST))
    np.testing.assert_array_equal(picture[title:title + 224, margin:margin + 224], original)  # the image itself
    gt = picture[title:title + 224, 2 * margin + 224:2 * margin + 448]
    from mmseg.datasets import ADE20KDataset
    wall = np.asarray(ADE20KDataset.METAINFO['palette'][0])  # opacity 1: a wall pixel is the wall colour
    label_map = np.asarray(Image.open(labels).resize((224, 224), Image.NEAREST))
    assert (gt[label_map == 1] == wall).all()

    bad = tool('tools/infer.py', str(image), str(CONFIG), str(path), '--gt', str(image), '--out', str(out))
    assert bad.returncode == 1 and 'a label map has one channel' in bad.stderr


@pytest.mark.slow
def test_the_detection_picture_has_the_ground_truth_boxes(tmp_path):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    import mmdet_custom  # noqa: F401
    from mmdet.registry import MODELS
    from mmdet_custom.datasets import write_synthetic_coco
    data = write_synthetic_coco(tmp_path / 'coco', num_train=1, num_val=1)
    init_default_scope('mmdet')
    model = MODELS.build(Config.fromfile(str(DET_CONFIG)).model)
    from mmdet_custom.datasets.synthetic_coco import CLASSES
    checkpoint = tmp_path / 'det.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {'dataset_meta': {'classes': CLASSES}}}, checkpoint)
    image = next((data / 'val2017').glob('*.jpg'))
    out = tmp_path / 'det.png'
    result = tool('tools/infer.py', str(image), str(DET_CONFIG), str(checkpoint), '--gt',
                  str(data / 'annotations' / 'instances_val2017.json'), '--out', str(out), '--score-thr', '0.99')
    assert result.returncode == 0, result.stderr[-3000:]
    picture = np.asarray(Image.open(out).convert('RGB'))
    width = Image.open(image).width
    assert picture.shape[1] == 3 * width + 4 * 6
    original = np.asarray(Image.open(image).convert('RGB'))
    gt_panel = picture[26:26 + original.shape[0], 2 * 6 + width:2 * 6 + 2 * width]
    assert (gt_panel != original).any(axis=-1).sum() > 20  # the boxes are drawn
