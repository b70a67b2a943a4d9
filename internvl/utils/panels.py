"""Pictures a user looks at: RGB panels side by side (image | ground truth | prediction), each titled,
with a legend of the classes shown - readable at a small demo image's size, because the panels are
enlarged before any text is drawn and the text keeps a fixed pixel size."""
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Color = tuple[int, int, int]
MARGIN = 6


def overlay_labels(image: np.ndarray, labels: np.ndarray, palette: Sequence[Color], opacity: float = 0.5,
                   ignore_index: int = 255) -> np.ndarray:
    """``image`` RGB [H, W, 3] with each pixel of class ``labels[y, x]`` blended with its palette colour
    (``opacity`` of the colour); ``ignore_index`` pixels are left as they are."""
    if labels.shape != image.shape[:2]:
        raise ValueError(f'label map of {labels.shape[1]}x{labels.shape[0]} pixels for an image of '
                         f'{image.shape[1]}x{image.shape[0]}')
    colours = np.zeros((256, 3), dtype=np.float32)
    colours[:len(palette)] = np.asarray(palette, dtype=np.float32)[:256]
    painted = image.astype(np.float32)
    mask = (labels != ignore_index) & (labels < len(palette))
    painted[mask] = (1 - opacity) * painted[mask] + opacity * colours[labels[mask]]
    return painted.round().astype(np.uint8)


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def compose_panels(panels: Sequence[tuple[str, np.ndarray]], legend: Sequence[tuple[str, Color]] = (),
                   scale: int = 1, font_size: int = 14) -> np.ndarray:
    """(title, RGB [H, W, 3]) panels of one height, enlarged ``scale`` times (nearest) and set side by
    side under their titles; below, a legend: a colour swatch and a name per entry, wrapped to the
    picture's width. -> RGB [H', W', 3]."""
    heights = {image.shape[0] for _, image in panels}
    if len(heights) != 1:
        raise ValueError(f'panels of different heights {sorted(heights)}')
    font = _font(font_size)
    images = [Image.fromarray(image).resize((image.shape[1] * scale, image.shape[0] * scale), Image.NEAREST)
              for _, image in panels]
    title_h = font_size + 2 * MARGIN
    width = sum(im.width for im in images) + MARGIN * (len(images) + 1)
    rows = _legend_rows(legend, font, width, font_size)
    height = title_h + images[0].height + MARGIN + len(rows) * (font_size + MARGIN) + (MARGIN if rows else 0)
    canvas = Image.new('RGB', (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    x = MARGIN
    for (title, _), im in zip(panels, images):
        draw.text((x, MARGIN), title, fill=(0, 0, 0), font=font)
        canvas.paste(im, (x, title_h))
        x += im.width + MARGIN
    y = title_h + images[0].height + MARGIN
    for row in rows:
        for x, name, colour in row:
            draw.rectangle([x, y, x + font_size, y + font_size], fill=tuple(int(c) for c in colour), outline=(0, 0, 0))
            draw.text((x + font_size + 4, y), name, fill=(0, 0, 0), font=font)
        y += font_size + MARGIN
    return np.asarray(canvas)


def _legend_rows(legend: Sequence[tuple[str, Color]], font: ImageFont.ImageFont, width: int,
                 font_size: int) -> list[list[tuple[int, str, Color]]]:
    """Legend entries laid out left to right, a new row whenever the next would pass ``width``."""
    rows, row, x = [], [], MARGIN
    for name, colour in legend:
        entry = font_size + 4 + int(font.getlength(name)) + 2 * MARGIN
        if row and x + entry > width:
            rows.append(row)
            row, x = [], MARGIN
        row.append((x, name, colour))
        x += entry
    return rows + [row] if row else rows
