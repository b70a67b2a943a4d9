"""Deterministic few-shot subsets of a segmentation training split (the 1/16 ... 1/2 protocol).

One seeded permutation of the sorted image names; the 1/k subset is its first ceil(n/k) names, so
the subsets are nested (1/16 in 1/8 in ... in 1/2) and the same on every machine. Lists are written
as mmseg ``ann_file``s: one image name without suffix per line, sorted.
"""
import math
import random
from pathlib import Path

FRACTIONS = (2, 4, 8, 16)


def fewshot_subset(names: list[str], denominator: int, seed: int = 0) -> list[str]:
    order = sorted(names)
    random.Random(seed).shuffle(order)
    return sorted(order[:math.ceil(len(order) / denominator)])


def write_fewshot_splits(data_root: str | Path, img_dir: str = 'images/training', img_suffix: str = '.jpg',
                         prefix: str = 'ade20k', seed: int = 0,
                         denominators: tuple[int, ...] = FRACTIONS) -> dict[int, Path]:
    """Write ``splits/{prefix}_1of{k}.txt`` under ``data_root``; returns {k: path}."""
    images = Path(data_root) / img_dir
    if not images.is_dir():
        raise FileNotFoundError(f'no training images folder {images}')
    names = [p.name[:-len(img_suffix)] for p in images.iterdir() if p.name.endswith(img_suffix)]
    if not names:
        raise FileNotFoundError(f'no *{img_suffix} images in {images}')
    out_dir = Path(data_root) / 'splits'
    out_dir.mkdir(exist_ok=True)
    written = {}
    for k in denominators:
        path = out_dir / f'{prefix}_1of{k}.txt'
        path.write_text('\n'.join(fewshot_subset(names, k, seed)) + '\n')
        written[k] = path
    return written
