"""Image preprocessing of the InternVL models, with the seed README's exact semantics.

``dynamic_preprocess`` tiles an image into ``image_size`` squares on the grid (cols, rows) whose aspect
ratio is closest to the image's, among all grids of ``min_num`` .. ``max_num`` tiles. Ties go to the
grid that comes later in the order of increasing tile count, and only when the image has more than
half the pixels of that grid (``area > 0.5 * image_size**2 * cols * rows``); the first candidate of a
ratio is kept otherwise. With ``use_thumbnail`` and more than one tile, the whole image resized to one
tile is appended last. Tiles are read row by row.
"""
import os
from contextlib import contextmanager
from typing import Callable, Iterator, Union

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image, UnidentifiedImageError
from torchvision.transforms.functional import InterpolationMode

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_transform(input_size: int, mean: tuple = IMAGENET_MEAN, std: tuple = IMAGENET_STD) -> Callable:
    """PIL image -> normalised tensor [3, input_size, input_size] (RGB, bicubic resize to a square)."""
    return T.Compose([
        T.Lambda(lambda img: img.convert('RGB') if img.mode != 'RGB' else img),
        T.Resize((input_size, input_size), interpolation=InterpolationMode.BICUBIC),
        T.ToTensor(),
        T.Normalize(mean=mean, std=std),
    ])


def target_ratios(min_num: int, max_num: int) -> list[tuple[int, int]]:
    """Every grid (cols, rows) with min_num <= cols * rows <= max_num, by increasing tile count."""
    if not 1 <= min_num <= max_num:
        raise ValueError(f'tile counts: expected 1 <= min_num <= max_num, got min_num={min_num}, max_num={max_num}')
    ratios = {(i, j) for n in range(min_num, max_num + 1) for i in range(1, n + 1) for j in range(1, n + 1)
              if min_num <= i * j <= max_num}
    return sorted(ratios, key=lambda r: r[0] * r[1])


def find_closest_aspect_ratio(aspect_ratio: float, ratios: list[tuple[int, int]], width: int, height: int,
                              image_size: int) -> tuple[int, int]:
    """The grid of ``ratios`` closest to ``aspect_ratio`` (width / height), with the tie rule above."""
    best_diff, best = float('inf'), (1, 1)
    area = width * height
    for ratio in ratios:
        diff = abs(aspect_ratio - ratio[0] / ratio[1])
        if diff < best_diff:
            best_diff, best = diff, ratio
        elif diff == best_diff and area > 0.5 * image_size * image_size * ratio[0] * ratio[1]:
            best = ratio
    return best


def tile_grid(width: int, height: int, min_num: int = 1, max_num: int = 6, image_size: int = 448
              ) -> tuple[int, int]:
    """The (cols, rows) grid ``dynamic_preprocess`` uses for an image of ``width`` x ``height``."""
    return find_closest_aspect_ratio(width / height, target_ratios(min_num, max_num), width, height, image_size)


def dynamic_preprocess(image: Image.Image, min_num: int = 1, max_num: int = 6, image_size: int = 448,
                       use_thumbnail: bool = False) -> list[Image.Image]:
    """Tile ``image`` (see the module docstring); returns the tiles, then the thumbnail if any."""
    cols, rows = tile_grid(*image.size, min_num=min_num, max_num=max_num, image_size=image_size)
    resized = image.resize((image_size * cols, image_size * rows))
    tiles = [resized.crop(((i % cols) * image_size, (i // cols) * image_size,
                           (i % cols + 1) * image_size, (i // cols + 1) * image_size))
             for i in range(cols * rows)]
    if use_thumbnail and len(tiles) != 1:
        tiles.append(image.resize((image_size, image_size)))
    return tiles


# 16-bit single-channel modes (16-bit RGB files PIL already reads as 8-bit RGB, by their high bytes)
SIXTEEN_BIT_MODES = ('I;16', 'I;16B', 'I;16L', 'I;16N')


@contextmanager
def _image_file(path: Union[str, os.PathLike]) -> Iterator[Image.Image]:
    """The file opened by PIL (its header read), every way it can fail an error naming it."""
    try:
        with Image.open(path) as img:
            if img.mode in ('I', 'F') and not (img.mode == 'I' and img.format == 'PNG'):  # PNG: at most 16 bits
                raise ValueError(f'{path}: a {"32-bit integer" if img.mode == "I" else "floating-point"} image '
                                 f'(PIL mode {img.mode}); expected 8 or 16 bits per channel')
            yield img
    except FileNotFoundError:
        raise FileNotFoundError(f'image file not found: {path}') from None
    except IsADirectoryError:
        raise ValueError(f'{path} is a folder; expected an image file') from None
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f'{path} is not an image PIL can read ({e})') from None


def open_image(path: Union[str, os.PathLike]) -> Image.Image:
    """Open an image file as 8-bit RGB, as mmcv / OpenCV read images for the mmseg and mmdet tools: a
    16-bit image keeps its high byte (OpenCV's ``IMREAD_COLOR``; PIL's ``convert('RGB')`` would clip
    it to white). A file that is not an image, or a 32-bit or float one, is an error naming it."""
    with _image_file(path) as img:
        img.load()
        if img.mode in SIXTEEN_BIT_MODES or img.mode == 'I':
            return Image.fromarray((np.asarray(img).astype(np.uint32) >> 8).astype(np.uint8)).convert('RGB')
        return img.convert('RGB')


def probe_image(path: Union[str, os.PathLike]) -> None:
    """The checks of ``open_image`` that need only the file's header (it exists, is an image PIL reads,
    of 8 or 16 bits): cheap enough to run on a whole folder before a model loads."""
    with _image_file(path):
        pass


def load_image(image_file: Union[str, os.PathLike, Image.Image], input_size: int = 448, max_num: int = 6,
               use_thumbnail: bool = True) -> torch.Tensor:
    """An image file -> its tiles (and thumbnail) as one tensor [tiles, 3, input_size, input_size]."""
    image = image_file if isinstance(image_file, Image.Image) else open_image(image_file)
    transform = build_transform(input_size)
    tiles = dynamic_preprocess(image.convert('RGB'), image_size=input_size, use_thumbnail=use_thumbnail,
                               max_num=max_num)
    return torch.stack([transform(tile) for tile in tiles])


def tile_layout(image: Image.Image, max_num: int = 6, image_size: int = 448, use_thumbnail: bool = True) -> str:
    """A one-line description of how ``image`` is tiled, e.g. '640x480 -> 2x2 tiles of 448 + thumbnail'."""
    width, height = image.size
    cols, rows = tile_grid(width, height, max_num=max_num, image_size=image_size)
    thumb = ' + thumbnail' if use_thumbnail and cols * rows != 1 else ''
    return f'{width}x{height} -> {cols}x{rows} tiles of {image_size}{thumb}'
