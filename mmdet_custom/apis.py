"""Inference helpers behind ``tools/infer.py`` for detection configs, on mmdet's ``DetInferencer``."""
import numpy as np
from mmengine.config import Config


def paint_detections(cfg: Config, image: str, checkpoint: str, device: str = 'cpu',
                     score_thr: float = 0.3) -> tuple[np.ndarray, str]:
    """Detect in ``image`` with the model of ``cfg`` -> (the image with the boxes, masks and labels
    scoring at least ``score_thr`` painted, RGB [H, W, 3], and a one-line summary of them)."""
    from mmdet.apis import DetInferencer
    inferencer = DetInferencer(model=cfg, weights=checkpoint, device=device, show_progress=False)
    result = inferencer(image, pred_score_thr=score_thr, return_vis=True, no_save_vis=True, no_save_pred=True)
    prediction = result['predictions'][0]
    classes = inferencer.model.dataset_meta['classes']
    kept = [(classes[label], round(score, 2)) for label, score in zip(prediction['labels'], prediction['scores'])
            if score >= score_thr]
    return result['visualization'][0], f'{len(kept)} detections at score >= {score_thr}: {kept}'
