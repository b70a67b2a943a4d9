"""A small synthetic dataset in the exact COCO 2017 instance layout, whose objects a detector can learn.

Layout (as COCO 2017): ``annotations/instances_{train,val}2017.json`` and ``{train,val}2017/%012d.jpg``.
Each annotation has ``id``, ``image_id``, ``category_id``, ``bbox`` [x, y, w, h], ``segmentation`` (a
list of polygons), ``area`` (of the polygons, as pycocotools computes it) and ``iscrowd`` 0.

Scenes: a textured background and 2 to 5 objects; each category has its own shape and colour (with
jitter), objects vary in size and may overlap (a later object hides part of an earlier one). The
annotations are modal, as COCO's: an object's polygons trace its visible pixels, and objects less than
half visible are not placed.
"""
import json
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils
from tqdm import tqdm

# category id -> (name, shape, base RGB colour)
CATEGORIES = {
    1: ('disc', 'disc', (210, 60, 50)),
    2: ('square', 'square', (50, 160, 70)),
    3: ('triangle', 'triangle', (60, 100, 220)),
    4: ('cross', 'cross', (230, 200, 40)),
}
CLASSES = tuple(name for name, _, _ in CATEGORIES.values())
PALETTE = [colour for _, _, colour in CATEGORIES.values()]
SPLITS = ('train2017', 'val2017')


def _draw_shape(shape: str, size: int, centre: tuple[float, float], radius: float) -> np.ndarray:
    """Boolean mask [size, size] of one shape."""
    canvas = Image.new('L', (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    cx, cy = centre
    r = radius
    if shape == 'disc':
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1)
    elif shape == 'square':
        draw.rectangle([cx - 0.85 * r, cy - 0.85 * r, cx + 0.85 * r, cy + 0.85 * r], fill=1)
    elif shape == 'triangle':
        draw.polygon([(cx, cy - r), (cx - r, cy + 0.8 * r), (cx + r, cy + 0.8 * r)], fill=1)
    elif shape == 'cross':
        t = 0.35 * r
        draw.rectangle([cx - r, cy - t, cx + r, cy + t], fill=1)
        draw.rectangle([cx - t, cy - r, cx + t, cy + r], fill=1)
    return np.asarray(canvas, dtype=bool)


def _polygons(mask: np.ndarray) -> list[list[float]]:
    """The outer contours of ``mask`` as COCO polygons [x1, y1, x2, y2, ...] (at least 3 points each);
    slivers thinner than 3 pixels (left by an occluder) are opened away first."""
    mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]


def make_scene(size: int, rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """One image [size, size, 3] uint8 and its objects: dicts with ``category_id`` and ``mask``."""
    yy, xx = np.mgrid[0:size, 0:size]
    base = rng.uniform(90, 160)
    image = base + 20 * np.sin(xx / rng.uniform(3, 9)) * np.cos(yy / rng.uniform(3, 9))
    image = np.repeat(image[..., None], 3, axis=2) + rng.normal(0, 6, (size, size, 3))
    objects: list[dict] = []
    for _ in range(rng.integers(2, 6)):
        category = int(rng.integers(1, len(CATEGORIES) + 1))
        radius = rng.uniform(0.09, 0.2) * size
        centre = tuple(rng.uniform(radius, size - radius, 2))
        mask = _draw_shape(CATEGORIES[category][1], size, centre, radius)
        visible = [obj['mask'] & ~mask for obj in objects]
        if any(v.sum() < 0.5 * obj['full_area'] for v, obj in zip(visible, objects)):
            continue  # would hide more than half of an earlier object
        for obj, v in zip(objects, visible):
            obj['mask'] = v
        colour = np.array(CATEGORIES[category][2]) + rng.normal(0, 15, 3)
        image[mask] = colour + rng.normal(0, 5, (int(mask.sum()), 3))
        objects.append(dict(category_id=category, mask=mask, full_area=int(mask.sum())))
    return np.clip(image, 0, 255).astype(np.uint8), objects


def _annotation(obj: dict, ann_id: int, image_id: int, size: int) -> Optional[dict]:
    polygons = _polygons(obj['mask'])
    if not polygons:
        return None
    rles = mask_utils.frPyObjects(polygons, size, size)
    rle = mask_utils.merge(rles)
    x, y, w, h = mask_utils.toBbox(rle).tolist()
    return dict(id=ann_id, image_id=image_id, category_id=obj['category_id'], segmentation=polygons,
                area=float(mask_utils.area(rle)), bbox=[x, y, w, h], iscrowd=0)


def write_synthetic_coco(root: str | Path, num_train: int = 200, num_val: int = 50, size: int = 128,
                         seed: int = 0) -> Path:
    """Write the dataset under ``root`` (skipped when the same one is already there); returns ``root``."""
    root = Path(root)
    spec = dict(num_train=num_train, num_val=num_val, size=size, seed=seed, version=1)
    stamp = root / 'synthetic_coco.json'
    if stamp.is_file() and json.loads(stamp.read_text()) == spec:
        return root
    (root / 'annotations').mkdir(parents=True, exist_ok=True)
    categories = [dict(id=i, name=name, supercategory='shape') for i, (name, _, _) in CATEGORIES.items()]
    for split, count in zip(SPLITS, (num_train, num_val)):
        (root / split).mkdir(exist_ok=True)
        rng = np.random.default_rng([seed, len(split), count])
        images, annotations = [], []
        for i in tqdm(range(count), desc=f'synthetic COCO {split}', unit='img'):
            image_id = i + 1
            image, objects = make_scene(size, rng)
            file_name = f'{image_id:012d}.jpg'
            Image.fromarray(image).save(root / split / file_name, quality=95)
            images.append(dict(id=image_id, file_name=file_name, height=size, width=size))
            for obj in objects:
                ann = _annotation(obj, len(annotations) + 1, image_id, size)
                if ann is not None:
                    annotations.append(ann)
        ann_path = root / 'annotations' / f'instances_{split}.json'
        tmp = ann_path.with_suffix('.json.tmp')
        tmp.write_text(json.dumps(dict(images=images, annotations=annotations, categories=categories)))
        tmp.replace(ann_path)
    stamp.write_text(json.dumps(spec))
    return root
