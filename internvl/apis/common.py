"""What the tools share: image folders, dtype names, the errors reported as one line."""
import argparse
import logging
import os
from pathlib import Path

import torch

DTYPES = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}
# the mistakes a user can make (a wrong path, file or value); tools report them in one line
USER_ERRORS = (FileNotFoundError, ValueError, KeyError)
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.gif', '.tif', '.tiff')


def list_images(folder: str | Path) -> list[Path]:
    """The image files (by suffix) of ``folder``, sorted by name; an error if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f'image folder not found: {folder}')
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise ValueError(f'{folder}: no image files (expected one of {", ".join(IMAGE_SUFFIXES)})')
    return images


def add_runtime_arguments(parser: argparse.ArgumentParser, batch_size: bool = True) -> None:
    """--dtype, --device (and --batch-size) of every tool."""
    if batch_size:
        parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--dtype', choices=sorted(DTYPES), default='float32')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')


def start_tool() -> None:
    """Log at INFO, and never wait on a hub look-up (models come from local folders)."""
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s')
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
