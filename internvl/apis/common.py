"""What the tools share: image folders, dtype names, the errors reported as one line, and the cheap
checks of arguments and files that run before any weights load."""
import argparse
import logging
import os
from pathlib import Path
from typing import Sequence

import torch

from ..data import probe_image
from ..models.linear import set_cpu_linear_backend
from ..utils.quiet import silence_known_noise

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


def case_insensitive(choices: Sequence[str]):
    """An argparse ``type`` that accepts any capitalisation of one of ``choices`` and returns it as written
    there (``--mode internvl-g`` -> 'InternVL-G')."""
    by_key = {c.lower(): c for c in choices}

    def choice(value: str) -> str:
        if value.lower() not in by_key:
            raise argparse.ArgumentTypeError(f'{value!r}: expected one of {", ".join(choices)}')
        return by_key[value.lower()]
    return choice


def check_at_least(option: str, value: int, minimum: int = 1) -> None:
    if value < minimum:
        raise ValueError(f'{option} must be >= {minimum}, got {value}')


def check_device(device: str) -> None:
    """``--device``: a name torch knows, and a GPU only where one is visible."""
    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise ValueError(f'--device {device}: not a device name (expected cpu, cuda or cuda:N)') from None
    if kind == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'--device {device}: no CUDA GPU is visible to torch here; use --device cpu')


def check_model_folder(path: str | os.PathLike, what: str = 'InternVL') -> None:
    """MODEL: an existing folder holding ``config.json`` (the weights and tokenizer are checked by their
    loaders, the tokenizer before the weights)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f'model folder not found: {path}')
    if not path.is_dir():
        raise ValueError(f'{path} is a file; expected the {what} model folder (config.json, weights, tokenizer)')
    if not (path / 'config.json').is_file():
        raise FileNotFoundError(f'{path}: no config.json; expected an {what} model folder')


def check_images(paths: Sequence[str | os.PathLike]) -> None:
    """Every image's header reads (``probe_image``; no decoding, so a large folder costs seconds): all
    unreadable ones named at once, before anything loads."""
    problems = []
    for path in paths:
        try:
            probe_image(path)
        except (FileNotFoundError, ValueError) as e:
            problems.append(str(e))
    if len(problems) == 1:
        raise ValueError(problems[0])
    if problems:
        raise ValueError(f'{len(problems)} of {len(paths)} images cannot be read: ' + '; '.join(problems[:5])
                         + ('; ...' if len(problems) > 5 else ''))


def add_runtime_arguments(parser: argparse.ArgumentParser, batch_size: bool = True) -> None:
    """--dtype, --device (and --batch-size) of every tool."""
    if batch_size:
        parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--dtype', type=case_insensitive(sorted(DTYPES)), default='float32')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')


def check_runtime_arguments(args: argparse.Namespace) -> None:
    """The checks of what ``add_runtime_arguments`` added: ``--device`` (and ``--batch-size``)."""
    check_device(args.device)
    if hasattr(args, 'batch_size'):
        check_at_least('--batch-size', args.batch_size)


def start_tool() -> None:
    """Log at INFO without the notices known to be harmless, never wait on a hub look-up (models come
    from local folders), and choose the CPU linear back-end (``INTERNVL_CPU_LINEAR``, default 'auto')."""
    silence_known_noise()
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s')
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    set_cpu_linear_backend()
