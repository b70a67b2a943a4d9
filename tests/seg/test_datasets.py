"""The embedded synthetic data is in the exact ADE20K layout mmseg reads; few-shot lists are deterministic."""
import numpy as np
import pytest
from PIL import Image

import mmseg_custom  # noqa: F401
from mmseg_custom.datasets import fewshot_subset, write_fewshot_splits, write_synthetic_ade


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return write_synthetic_ade(tmp_path_factory.mktemp('syn') / 'ade', num_train=20, num_val=4, size=56)


def test_layout_and_labels(data_root):
    for split, stem, count in (('training', 'train', 20), ('validation', 'val', 4)):
        images = sorted((data_root / 'images' / split).glob('*.jpg'))
        labels = sorted((data_root / 'annotations' / split).glob('*.png'))
        expected = [f'ADE_{stem}_{i:08d}' for i in range(1, count + 1)]
        assert [p.stem for p in images] == [p.stem for p in labels] == expected
    label = np.asarray(Image.open(labels[0]))
    assert label.dtype == np.uint8 and label.shape == (56, 56)
    assert set(np.unique(label)) <= set(range(151)) and 0 in label and 1 in label


def test_mmseg_reads_it_as_ade20k(data_root):
    from mmengine.registry import init_default_scope
    from mmseg.datasets import ADE20KDataset
    init_default_scope('mmseg')  # mmseg's LoadAnnotations, not mmcv's
    dataset = ADE20KDataset(data_root=str(data_root), data_prefix=dict(img_path='images/validation',
                            seg_map_path='annotations/validation'),
                            pipeline=[dict(type='LoadImageFromFile'),
                                      dict(type='LoadAnnotations', reduce_zero_label=True)])
    sample = dataset[0]
    values = set(np.unique(sample['gt_seg_map']))
    assert len(dataset) == 4 and 255 in values and values - {255} <= set(range(150))


def test_regenerating_is_skipped_and_deterministic(data_root, tmp_path):
    before = (data_root / 'images' / 'training' / 'ADE_train_00000003.jpg').stat().st_mtime_ns
    write_synthetic_ade(data_root, num_train=20, num_val=4, size=56)
    assert (data_root / 'images' / 'training' / 'ADE_train_00000003.jpg').stat().st_mtime_ns == before
    again = write_synthetic_ade(tmp_path / 'again', num_train=20, num_val=4, size=56)
    for name in ('annotations/training/ADE_train_00000007.png', 'images/validation/ADE_val_00000002.jpg'):
        assert (again / name).read_bytes() == (data_root / name).read_bytes()


def test_fewshot_subsets_are_deterministic_nested_and_sized():
    names = [f'img_{i:04d}' for i in range(1000)]
    subsets = {k: fewshot_subset(names, k, seed=0) for k in (2, 4, 8, 16)}
    assert subsets == {k: fewshot_subset(list(reversed(names)), k, seed=0) for k in (2, 4, 8, 16)}
    assert [len(subsets[k]) for k in (2, 4, 8, 16)] == [500, 250, 125, 63]
    assert set(subsets[16]) <= set(subsets[8]) <= set(subsets[4]) <= set(subsets[2])
    assert fewshot_subset(names, 16, seed=1) != subsets[16]


def test_fewshot_split_files(data_root):
    written = write_fewshot_splits(data_root)
    lines = written[4].read_text().split()
    assert len(lines) == 5 and lines == sorted(lines) and all(n.startswith('ADE_train_') for n in lines)
    assert written[2].read_text() == write_fewshot_splits(data_root)[2].read_text()
