"""Loading an InternVL-Chat folder with its tokenizer, tiling the images of a conversation, and the
conversation itself (one question, or rounds read from the user)."""
import logging
import os
from typing import Any, Callable, Optional

import torch

from ..data import load_image, open_image, tile_layout
from ..models.internvl_chat import InternVLChatModel
from ..models.tokenizer import load_tokenizer

logger = logging.getLogger(__name__)


def load_chat_model(path: str | os.PathLike, dtype: Optional[torch.dtype] = None, device: str = 'cpu',
                    template: Optional[str] = None) -> tuple[InternVLChatModel, Any]:
    """(model on ``device`` in eval mode, the folder's tokenizer); the tokenizer, being cheap, first."""
    tokenizer = load_tokenizer(path)
    model = InternVLChatModel.from_pretrained(path, torch_dtype=dtype, template=template).to(device)
    return model, tokenizer


def prepare_images(paths: list[str], image_size: int, max_num: int = 6, dtype: torch.dtype = torch.float32,
                   device: str = 'cpu') -> tuple[Optional[torch.Tensor], list[int], list[str]]:
    """Image files -> (all tiles [T, 3, S, S] or None, tiles per image, one tiling line per image)."""
    tiles, counts, layouts = [], [], []
    for path in paths:
        image = open_image(path)
        pixel_values = load_image(image, input_size=image_size, max_num=max_num)
        tiles.append(pixel_values)
        counts.append(len(pixel_values))
        layouts.append(f'{path}: {tile_layout(image, max_num=max_num, image_size=image_size)} '
                       f'= {len(pixel_values)} tiles')
    pixel_values = torch.cat(tiles).to(device=device, dtype=dtype) if tiles else None
    return pixel_values, counts, layouts


def first_question(question: str, num_images: int) -> str:
    """Several images are numbered in the first question (``Image-1: <image>``) unless it places them."""
    if num_images < 2 or '<image>' in question:
        return question
    return ''.join(f'Image-{i + 1}: <image>\n' for i in range(num_images)) + question


def converse(answer: Callable[[str, Optional[list]], tuple[str, list]], ask: Callable[[], str],
             say: Callable[[str], None], question: Optional[str] = None) -> None:
    """With ``question``: one round. Without: rounds of ``ask()`` until an empty line or end of input
    (Ctrl-D). Ctrl-C while an answer is written stops that answer (the round is forgotten) and asks
    again; Ctrl-C at the prompt clears the line. ``answer(question, history)`` -> (text, history)."""
    history = None
    while True:
        current = question
        if current is None:
            try:
                current = ask().strip()
            except EOFError:
                say('')
                return
            except KeyboardInterrupt:
                say('')
                continue
            if not current:
                return
        try:
            _, history = answer(current, history)
        except KeyboardInterrupt:
            say('\n(answer stopped)')
        if question is not None:
            return
