"""Validate a dataset before a long run (``tools/check_dataset.py``): every file readable, every label
in range, every COCO box inside its image. Nothing is written; the report lists the bad files by name,
with what is wrong. This module is the task-independent half (the report, reading an image, walking a
config's datasets); the checks of one dataset are the task packages' (``mmseg_custom.analysis``,
``mmdet_custom.analysis``).
"""
import os.path as osp
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
from mmengine.config import Config
from mmengine.registry import DefaultScope
from PIL import Image

from ..cli import config_task, wrapped_datasets


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


def read_image(path: str) -> tuple[Optional[np.ndarray], Optional[str]]:
    if not osp.isfile(path):
        return None, 'file not found'
    try:
        with Image.open(path) as img:
            img.load()  # decodes everything: a truncated file fails here
            return np.asarray(img), None
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        return None, f'unreadable image ({e})'


DatasetCheck = Callable[[dict, str], tuple[DatasetReport, tuple]]


def check_config(cfg: Config, check_dataset: DatasetCheck, splits: tuple[str, ...] = ('train', 'val', 'test')
                 ) -> tuple[list[str], int]:
    """Check the datasets of the config's dataloaders, each with ``check_dataset(dataset_cfg, name) ->
    (report, class names)`` (the task's) -> (the report, one block per dataset; the number of problems
    found)."""
    blocks, bad = [], 0
    seen = set()
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if not loader:
            continue
        for dataset in wrapped_datasets(loader['dataset']):
            if dataset.get('data_root') is None and dataset.get('ann_file') is None:
                continue
            key = (dataset.get('data_root'), dataset.get('ann_file'), str(dataset.get('data_prefix')))
            if key in seen:
                continue
            seen.add(key)
            name = f'{split} ({dataset.get("type")} at {dataset.get("data_root")})'
            with DefaultScope.overwrite_default_scope(config_task(cfg)):
                report, classes = check_dataset(dataset, name)
            if not report.samples:
                report.problems.append(f'{name}: the dataset has no samples')
            blocks.append(report.format(classes))
            bad += len(report.problems)
    return blocks, bad
