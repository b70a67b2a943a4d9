"""Loading an InternVL-Chat folder with its tokenizer, and tiling the images of a conversation."""
import logging
import os
from typing import Any, Optional

import torch

from ..data import load_image, open_image, tile_layout
from ..models.internvl_chat import InternVLChatModel

logger = logging.getLogger(__name__)


def load_chat_model(path: str | os.PathLike, dtype: Optional[torch.dtype] = None, device: str = 'cpu',
                    template: Optional[str] = None) -> tuple[InternVLChatModel, Any]:
    """(model on ``device`` in eval mode, the folder's tokenizer)."""
    from transformers import AutoTokenizer
    model = InternVLChatModel.from_pretrained(path, torch_dtype=dtype, template=template).to(device)
    tokenizer = AutoTokenizer.from_pretrained(path)
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
