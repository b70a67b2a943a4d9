"""Inference helpers behind ``tools/infer.py`` for segmentation configs."""
from typing import Optional

import numpy as np
from mmengine.config import Config

from internvl.utils.panels import compose_panels, overlay_labels


def reduces_zero_label(cfg: Config) -> bool:
    """Whether the config's test pipeline loads label maps with ``reduce_zero_label`` (ADE20K: 0 is ignore)."""
    return any(t.get('type') == 'LoadAnnotations' and t.get('reduce_zero_label', False)
               for t in cfg.get('test_pipeline', []))


def read_label_map(path: str, reduce_zero_label: bool) -> np.ndarray:
    """A label-map PNG as the dataset reads it: 0 -> 255 (ignore) and the rest minus 1 when reduced."""
    from PIL import Image
    try:
        labels = np.asarray(Image.open(path))
    except (OSError, ValueError) as e:
        raise ValueError(f'{path}: not a readable label map ({e})') from None
    if labels.ndim != 2:
        raise ValueError(f'{path}: a label map has one channel of class indices, this image has shape {labels.shape}')
    labels = labels.astype(np.int64)
    if reduce_zero_label:
        labels = np.where(labels == 0, 255, labels - 1)
    return labels


def paint_segmentation(cfg: Config, image: str, checkpoint: str, device: str = 'cpu', opacity: float = 0.5,
                       label_map: Optional[str] = None, scale: int = 1,
                       backbone_from_pretrained: bool = False) -> tuple[np.ndarray, str]:
    """Segment ``image`` with the model of ``cfg`` -> (the picture: image | ground truth (when
    ``label_map`` is given) | prediction, the classes painted over the image, with a legend of the
    classes present; RGB [H, W, 3]; and a one-line summary of the predicted classes).
    ``backbone_from_pretrained``: the checkpoint lacks the frozen ViT, read from ``model.backbone.pretrained``."""
    import mmcv
    from mmseg.apis import inference_model, init_model

    from internvl_mmlab.cli import load_pretrained_backbone
    reduce_zero_label = reduces_zero_label(cfg)  # before inference_model takes LoadAnnotations out of the config
    model = init_model(cfg, checkpoint, device=device)
    if backbone_from_pretrained:
        load_pretrained_backbone(model)
    prediction = inference_model(model, image).pred_sem_seg.data[0].cpu().numpy()
    classes, palette = model.dataset_meta['classes'], model.dataset_meta['palette']
    rgb = mmcv.imread(image, channel_order='rgb')
    panels, present = [('image', rgb)], set(np.unique(prediction).tolist())
    if label_map is not None:
        labels = read_label_map(label_map, reduce_zero_label)
        if labels.shape != rgb.shape[:2]:
            raise ValueError(f'{label_map}: {labels.shape[1]}x{labels.shape[0]} pixels, the image {image} has '
                             f'{rgb.shape[1]}x{rgb.shape[0]}')
        panels.append(('ground truth', overlay_labels(rgb, labels, palette, opacity)))
        present |= {c for c in np.unique(labels).tolist() if c < len(classes)}
    panels.append(('prediction', overlay_labels(rgb, prediction, palette, opacity)))
    legend = [(classes[c], palette[c]) for c in sorted(present)]
    predicted = [classes[c] for c in np.unique(prediction).tolist()]
    return compose_panels(panels, legend, scale=scale), f'predicted classes: {predicted}'
