"""Inference helpers behind ``tools/infer.py`` for segmentation configs."""
import numpy as np
from mmengine.config import Config


def paint_segmentation(cfg: Config, image: str, checkpoint: str, device: str = 'cpu',
                       opacity: float = 0.5) -> tuple[np.ndarray, str]:
    """Segment ``image`` with the model of ``cfg`` -> (the image with the prediction painted over it,
    RGB [H, W, 3], and a one-line summary of the predicted classes)."""
    from mmseg.apis import inference_model, init_model, show_result_pyplot
    model = init_model(cfg, checkpoint, device=device)
    result = inference_model(model, image)
    painted = show_result_pyplot(model, image, result, opacity=opacity, draw_gt=False, show=False)
    classes = model.dataset_meta['classes']
    present = result.pred_sem_seg.data.unique().tolist()
    return painted, f'predicted classes: {[classes[i] for i in present]}'
