"""Validate a dataset before a long run: every file readable, every label in range, every COCO box
inside its image (``tools/check_dataset.py``). Nothing is written; the report lists the bad files by
name, with what is wrong.

Segmentation (mmseg datasets): each image must decode completely (a truncated file is bad), each label
map must have the image's size and values that are classes or the ignore index. With
``reduce_zero_label`` (ADE20K) the raw values are 0 (ignored), 1..num_classes and 255.
Detection (COCO json, read directly: mmdet's loader drops bad boxes silently): each image file must
exist and decode, each box ``[x, y, w, h]`` must have w, h > 0 and lie inside its image (0.5 pixel of
slack), each area must be non-negative and each category id declared.
"""
import json
import os.path as osp
from collections import Counter
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image
from tqdm import tqdm

from .runner import _datasets, config_task

SLACK = 0.5


@dataclass
class DatasetReport:
    name: str
    samples: int = 0
    classes: Counter = field(default_factory=Counter)  # class name -> images (seg) / boxes (det) with it
    problems: list[str] = field(default_factory=list)  # 'file: what is wrong'

    def format(self, class_names: tuple) -> str:
        present = [f'{name} ({self.classes[name]})' for name in class_names if self.classes[name]]
        absent = [name for name in class_names if not self.classes[name]]
        lines = [f'{self.name}: {self.samples} samples, {len(present)} of {len(class_names)} classes present',
                 '  present: ' + ', '.join(present[:40]) + (' ...' if len(present) > 40 else '')]
        if absent:
            lines.append(f'  absent ({len(absent)}): ' + ', '.join(absent[:20]) + (' ...' if len(absent) > 20 else ''))
        lines.append(f'  problems: {len(self.problems)}')
        lines += [f'    {p}' for p in self.problems[:50]]
        if len(self.problems) > 50:
            lines.append(f'    ... and {len(self.problems) - 50} more')
        return '\n'.join(lines)


def _read_image(path: str) -> tuple[Optional[np.ndarray], Optional[str]]:
    if not osp.isfile(path):
        return None, 'file not found'
    try:
        with Image.open(path) as img:
            img.load()  # decodes everything: a truncated file fails here
            return np.asarray(img), None
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        return None, f'unreadable image ({e})'


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
        image, error = _read_image(info['img_path'])
        if error:
            report.problems.append(f'{info["img_path"]}: {error}')
        seg_path = info.get('seg_map_path')
        label, error = _read_image(seg_path) if seg_path else (None, None)
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


def check_coco(ann_file: str, img_dir: str, name: str) -> tuple[DatasetReport, tuple]:
    try:
        with open(ann_file) as f:
            coco = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f'{ann_file}: not a readable COCO json ({e})') from None
    categories = {c['id']: c['name'] for c in coco.get('categories', [])}
    images = {im['id']: im for im in coco.get('images', [])}
    report = DatasetReport(name)
    for image in tqdm(images.values(), desc=f'checking {name}', unit='image'):
        report.samples += 1
        path = osp.join(img_dir, image['file_name'])
        pixels, error = _read_image(path)
        if error:
            report.problems.append(f'{path}: {error}')
        elif pixels.shape[:2] != (image['height'], image['width']):
            report.problems.append(f'{path}: {pixels.shape[1]}x{pixels.shape[0]}, the json says '
                                   f'{image["width"]}x{image["height"]}')
    for ann in coco.get('annotations', []):
        where = f'{ann_file}: annotation {ann.get("id")}'
        image = images.get(ann.get('image_id'))
        if image is None:
            report.problems.append(f'{where}: image_id {ann.get("image_id")} is not in "images"')
            continue
        x, y, w, h = ann['bbox']
        if w <= 0 or h <= 0:
            report.problems.append(f'{where} ({image["file_name"]}): box {ann["bbox"]} has no width or height')
        elif x < -SLACK or y < -SLACK or x + w > image['width'] + SLACK or y + h > image['height'] + SLACK:
            report.problems.append(f'{where} ({image["file_name"]}): box {ann["bbox"]} lies outside the '
                                   f'{image["width"]}x{image["height"]} image')
        if ann.get('area', 0) < 0:
            report.problems.append(f'{where} ({image["file_name"]}): negative area {ann["area"]}')
        if ann.get('category_id') not in categories:
            report.problems.append(f'{where}: category_id {ann.get("category_id")} is not declared')
        else:
            report.classes[categories[ann['category_id']]] += 1
    return report, tuple(categories.values())


def check_config(cfg: Config, splits: tuple[str, ...] = ('train', 'val', 'test')) -> tuple[list[str], int]:
    """Check the datasets of the config's dataloaders -> (the report, one block per dataset; the number of
    problems found)."""
    task = config_task(cfg)
    init_default_scope(task)
    if task == 'mmseg':
        import mmseg_custom  # noqa: F401
    blocks, bad = [], 0
    seen = set()
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if not loader:
            continue
        for dataset in _datasets(loader['dataset']):
            if dataset.get('data_root') is None and dataset.get('ann_file') is None:
                continue
            key = (dataset.get('data_root'), dataset.get('ann_file'), str(dataset.get('data_prefix')))
            if key in seen:
                continue
            seen.add(key)
            name = f'{split} ({dataset.get("type")} at {dataset.get("data_root")})'
            if task == 'mmseg':
                report, classes = check_segmentation(dataset, name)
            else:
                root = dataset.get('data_root') or ''
                img_dir = osp.join(root, (dataset.get('data_prefix') or {}).get('img', ''))
                report, classes = check_coco(osp.join(root, dataset['ann_file']), img_dir, name)
            if not report.samples:
                report.problems.append(f'{name}: the dataset has no samples')
            blocks.append(report.format(classes))
            bad += len(report.problems)
    return blocks, bad
