"""The segmentation side of ``tools/check_dataset.py``: one mmseg dataset checked.

Each image must decode completely (a truncated file is bad), each label map must have the image's size
and values that are classes or the ignore index. With ``reduce_zero_label`` (ADE20K) the raw values are
0 (ignored), 1..num_classes and 255.
"""
import numpy as np
from tqdm import tqdm

from internvl_mmlab.analysis.data_check import DatasetReport, read_image


def check_segmentation(dataset_cfg: dict, name: str) -> tuple[DatasetReport, tuple]:
    from mmseg.registry import DATASETS
    dataset = DATASETS.build({**dataset_cfg, 'pipeline': [], 'lazy_init': False})
    classes = tuple(dataset.metainfo['classes'])
    reduce_zero = any(t.get('reduce_zero_label') for t in dataset_cfg.get('pipeline', []) if isinstance(t, dict)) \
        or dataset.reduce_zero_label
    ignore = dataset.ignore_index
    valid = np.zeros(256, dtype=bool)
    if reduce_zero:
        valid[0:len(classes) + 1] = True
        valid[255] = True
    else:
        valid[:len(classes)] = True
        valid[ignore] = True
    report = DatasetReport(name)
    for index in tqdm(range(len(dataset)), desc=f'checking {name}', unit='image'):
        info = dataset.get_data_info(index)
        report.samples += 1
        image, error = read_image(info['img_path'])
        if error:
            report.problems.append(f'{info["img_path"]}: {error}')
        seg_path = info.get('seg_map_path')
        label, error = read_image(seg_path) if seg_path else (None, None)
        if error:
            report.problems.append(f'{seg_path}: {error}')
        if label is None:
            continue
        if label.ndim != 2:
            report.problems.append(f'{seg_path}: a label map must have one channel, it has shape {label.shape}')
            continue
        if image is not None and image.shape[:2] != label.shape:
            report.problems.append(f'{seg_path}: size {label.shape[::-1]} differs from its image\'s '
                                   f'{image.shape[1::-1]}')
        values = np.unique(label)
        bad = [int(v) for v in values if v > 255 or not valid[v]]
        if bad:
            expected = (f'0 (ignored), 1..{len(classes)} or 255 (reduce_zero_label)' if reduce_zero
                        else f'0..{len(classes) - 1} or the ignore index {ignore}')
            report.problems.append(f'{seg_path}: label values {bad[:10]} are outside the class range '
                                   f'(expected {expected})')
        for v in values:
            index = int(v) - 1 if reduce_zero else int(v)
            if 0 <= index < len(classes) and v <= 255 and valid[v]:
                report.classes[classes[index]] += 1
    return report, classes
