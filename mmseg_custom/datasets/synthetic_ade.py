"""A small synthetic dataset in the exact ADE20K layout, that a model can really learn.

Layout (as ADEChallengeData2016): ``images/{training,validation}/ADE_{train,val}_%08d.jpg`` and
``annotations/{training,validation}/ADE_{train,val}_%08d.png`` holding uint8 labels, 0 = ignore,
1..150 = the ADE20K classes (loaded with ``reduce_zero_label=True``). Scenes: a textured background
of class 1 (wall) and a few shapes; each shape class has its own shape, colour (with jitter) and
stripe texture, and a 1-pixel ignore border, so colour, form and texture all carry the class.
"""
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

BACKGROUND = 1  # ADE20K 'wall'
# ADE20K label -> (shape, base RGB colour, stripe period in pixels)
SHAPE_CLASSES = {
    3: ('ellipse', (70, 130, 220), 0),      # sky
    5: ('triangle', (40, 150, 60), 6),      # tree
    13: ('square', (200, 60, 50), 0),       # person
    21: ('rectangle', (230, 200, 40), 4),   # car
    24: ('ring', (150, 80, 190), 0),        # painting
}
SPLITS = {'training': 'train', 'validation': 'val'}


def _shape_mask(shape: str, size: int, rng: np.random.Generator) -> Image.Image:
    mask = Image.new('L', (size, size), 0)
    draw = ImageDraw.Draw(mask)
    r = rng.uniform(0.12, 0.22) * size
    cx, cy = rng.uniform(r, size - r, 2)
    box = [cx - r, cy - r, cx + r, cy + r]
    if shape == 'ellipse':
        draw.ellipse(box, fill=255)
    elif shape == 'square':
        draw.rectangle(box, fill=255)
    elif shape == 'rectangle':
        draw.rectangle([cx - 1.6 * r, cy - 0.6 * r, cx + 1.6 * r, cy + 0.6 * r], fill=255)
    elif shape == 'triangle':
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=255)
    elif shape == 'ring':
        draw.ellipse(box, fill=255)
        draw.ellipse([cx - r / 2, cy - r / 2, cx + r / 2, cy + r / 2], fill=0)
    return mask


def make_scene(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One image [size, size, 3] uint8 and its label map [size, size] uint8."""
    yy, xx = np.mgrid[0:size, 0:size]
    base = rng.uniform(90, 160)
    image = base + 25 * np.sin(xx / rng.uniform(3, 9)) * np.cos(yy / rng.uniform(3, 9))
    image = np.repeat(image[..., None], 3, axis=2) + rng.normal(0, 6, (size, size, 3))
    label = np.full((size, size), BACKGROUND, np.uint8)
    for cls in rng.choice(list(SHAPE_CLASSES), size=rng.integers(2, 4), replace=False):
        shape, colour, period = SHAPE_CLASSES[int(cls)]
        mask = np.asarray(_shape_mask(shape, size, rng)) > 0
        stripes = np.sign(np.sin(2 * math.pi * (xx + yy) / period)) if period else np.zeros((size, size))
        pixel = (np.array(colour) + rng.normal(0, 12, 3)) * (1.0 + 0.25 * stripes)[..., None]  # [size, size, 3]
        image[mask] = pixel[mask]
        border = mask & ~_erode(mask)
        label[mask] = cls
        label[border] = 0
    return np.clip(image, 0, 255).astype(np.uint8), label


def _erode(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    out[1:] &= mask[:-1]
    out[:-1] &= mask[1:]
    out[:, 1:] &= mask[:, :-1]
    out[:, :-1] &= mask[:, 1:]
    return out


def write_synthetic_ade(root: str | Path, num_train: int = 200, num_val: int = 40, size: int = 112,
                        seed: int = 0) -> Path:
    """Write the dataset under ``root`` (skipped when the same one is already there); returns ``root``."""
    root = Path(root)
    spec = dict(num_train=num_train, num_val=num_val, size=size, seed=seed, version=1)
    stamp = root / 'synthetic_ade.json'
    if stamp.is_file() and json.loads(stamp.read_text()) == spec:
        return root
    counts = {'training': num_train, 'validation': num_val}
    for split, count in counts.items():
        (root / 'images' / split).mkdir(parents=True, exist_ok=True)
        (root / 'annotations' / split).mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng([seed, len(split)])
        for i in tqdm(range(count), desc=f'synthetic ADE20K {split}', unit='img'):
            image, label = make_scene(size, rng)
            name = f'ADE_{SPLITS[split]}_{i + 1:08d}'
            Image.fromarray(image).save(root / 'images' / split / f'{name}.jpg', quality=95)
            Image.fromarray(label).save(root / 'annotations' / split / f'{name}.png')
    stamp.write_text(json.dumps(spec))
    return root
