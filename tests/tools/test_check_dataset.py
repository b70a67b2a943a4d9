"""tools/check_dataset.py names each bad file and what is wrong with it, and passes clean data."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SEG_CONFIG = REPO / 'configs' / 'seg' / 'demo' / 'upernet_internvit-tiny_1xb8-500it_synthetic-ade-112x112.py'
DET_CONFIG = REPO / 'configs' / 'det' / 'demo' / 'mask-rcnn_internvit-tiny_1xb4-12e_synthetic-coco-128x128.py'


def check(config: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, 'tools/check_dataset.py', str(config), '--cfg-options', *options],
                          capture_output=True, text=True, cwd=REPO, timeout=600)


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def test_segmentation_data(tmp_path):
    from mmseg_custom.datasets import write_synthetic_ade
    data = write_synthetic_ade(tmp_path / 'data', num_train=6, num_val=3, size=64)
    roots = [f'{split}_dataloader.dataset.data_root={data}' for split in ('train', 'val', 'test')]
    clean = check(SEG_CONFIG, *roots)
    assert clean.returncode == 0, clean.stderr
    assert 'train (ADE20KDataset' in clean.stdout and '6 samples' in clean.stdout and 'no problems found' in clean.stdout
    assert 'wall (6)' in clean.stdout  # the background class of every scene
    truncate(data / 'images' / 'training' / 'ADE_train_00000002.jpg')
    label = data / 'annotations' / 'training' / 'ADE_train_00000003.png'
    values = np.array(Image.open(label))
    values[0, 0] = 200
    Image.fromarray(values).save(label)
    bad = check(SEG_CONFIG, *roots)
    assert bad.returncode == 1
    assert 'ADE_train_00000002.jpg: unreadable image (image file is truncated' in bad.stdout
    assert 'ADE_train_00000003.png: label values [200] are outside the class range' in bad.stdout
    assert '2 problems found' in bad.stdout


def test_coco_data(tmp_path):
    from mmdet_custom.datasets import write_synthetic_coco
    coco = write_synthetic_coco(tmp_path / 'coco', num_train=4, num_val=2, size=64)
    options = [f'{split}_dataloader.dataset.data_root={coco}/' for split in ('train', 'val', 'test')] + \
        [f'{split}_evaluator.ann_file={coco}/annotations/instances_val2017.json' for split in ('val', 'test')]
    clean = check(DET_CONFIG, *options)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    ann_file = coco / 'annotations' / 'instances_train2017.json'
    content = json.loads(ann_file.read_text())
    first, second = content['annotations'][:2]
    first['bbox'] = [50.0, 10.0, 30.0, 10.0]  # x + w = 80 > 64
    second['area'] = -4.0
    ann_file.write_text(json.dumps(content))
    missing = coco / 'train2017' / content['images'][-1]['file_name']
    missing.unlink()
    bad = check(DET_CONFIG, *options)
    assert bad.returncode == 1
    assert f'annotation {first["id"]}' in bad.stdout and 'lies outside the 64x64 image' in bad.stdout
    assert f'annotation {second["id"]}' in bad.stdout and 'negative area -4.0' in bad.stdout
    assert f'{missing}: file not found' in bad.stdout
