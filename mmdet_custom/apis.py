"""Inference helpers behind ``tools/infer.py`` for detection configs, on mmdet's ``DetInferencer``."""
import json
import os
from typing import Optional

import numpy as np
from mmengine.config import Config

from internvl.utils.panels import compose_panels


def ground_truth_boxes(annotation_file: str, image: str) -> list[tuple[str, list[float]]]:
    """(category name, [x, y, w, h]) of each annotated object of ``image`` (matched by file name) in a
    COCO annotation file; a clear error when the file or the image is not there."""
    try:
        with open(annotation_file) as f:
            coco = json.load(f)
        names = {c['id']: c['name'] for c in coco['categories']}
        images = {os.path.basename(i['file_name']): i['id'] for i in coco['images']}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f'{annotation_file}: not a readable COCO annotation file ({e})') from None
    name = os.path.basename(image)
    if name not in images:
        raise ValueError(f'{annotation_file}: no image named {name} in its "images"')
    return [(names[a['category_id']], a['bbox']) for a in coco.get('annotations', [])
            if a.get('image_id') == images[name]]


def draw_boxes(image: np.ndarray, boxes: list[tuple[str, list[float]]], colours: dict[str, tuple]) -> np.ndarray:
    """``image`` RGB with each (name, [x, y, w, h]) box outlined in its class colour."""
    from PIL import Image, ImageDraw
    picture = Image.fromarray(image)
    draw = ImageDraw.Draw(picture)
    for name, (x, y, w, h) in boxes:
        draw.rectangle([x, y, x + w, y + h], outline=colours.get(name, (255, 0, 0)), width=1)
    return np.asarray(picture)


def paint_detections(cfg: Config, image: str, checkpoint: str, device: str = 'cpu', score_thr: float = 0.3,
                     annotation_file: Optional[str] = None, scale: int = 1) -> tuple[np.ndarray, str]:
    """Detect in ``image`` with the model of ``cfg`` -> (the picture: image | ground-truth boxes (when a
    COCO ``annotation_file`` is given) | detections (boxes, masks and labels scoring at least
    ``score_thr``, as mmdet paints them), with a legend of the classes present; RGB [H, W, 3]; and a
    one-line summary of the detections)."""
    import mmcv
    from mmdet.apis import DetInferencer
    inferencer = DetInferencer(model=cfg, weights=checkpoint, device=device, show_progress=False)
    result = inferencer(image, pred_score_thr=score_thr, return_vis=True, no_save_vis=True, no_save_pred=True)
    prediction = result['predictions'][0]
    meta = inferencer.model.dataset_meta
    classes = meta['classes']
    palette = meta.get('palette') or [(220, 20, 60)] * len(classes)
    colours = {name: tuple(int(c) for c in palette[i % len(palette)]) for i, name in enumerate(classes)}
    kept = [(classes[label], round(score, 2)) for label, score in zip(prediction['labels'], prediction['scores'])
            if score >= score_thr]
    rgb = mmcv.imread(image, channel_order='rgb')
    panels, present = [('image', rgb)], {name for name, _ in kept}
    if annotation_file is not None:
        boxes = ground_truth_boxes(annotation_file, image)
        panels.append(('ground truth', draw_boxes(rgb, boxes, colours)))
        present |= {name for name, _ in boxes}
    panels.append((f'detections (score >= {score_thr})', result['visualization'][0]))
    legend = [(name, colours[name]) for name in classes if name in present]
    return (compose_panels(panels, legend, scale=scale),
            f'{len(kept)} detections at score >= {score_thr}: {kept}')
