"""mmseg's EncoderDecoder whose sliding-window inference runs the crops in batches.

mmseg 1.2.2 encodes the crops of an image one after another and adds each crop's logits into the
image-sized sum through a zero-padded copy of the whole image ([B, classes, H, W] per window).
Here every crop of every image in the batch is gathered first and encoded ``test_cfg.crop_batch_size``
at a time (default 8), and each crop's logits are added in place into its window; the sum is divided
by the number of windows covering each pixel, exactly as mmseg does, so the result is the same.
"""
import torch
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from torch import Tensor


def slide_windows(height: int, width: int, crop: tuple[int, int], stride: tuple[int, int]) -> list[tuple[int, ...]]:
    """(y1, y2, x1, x2) of each window, in mmseg's order; edge windows are shifted inside the image."""
    (h_crop, w_crop), (h_stride, w_stride) = crop, stride
    h_grids = max(height - h_crop + h_stride - 1, 0) // h_stride + 1
    w_grids = max(width - w_crop + w_stride - 1, 0) // w_stride + 1
    windows = []
    for h_idx in range(h_grids):
        for w_idx in range(w_grids):
            y2, x2 = min(h_idx * h_stride + h_crop, height), min(w_idx * w_stride + w_crop, width)
            windows.append((max(y2 - h_crop, 0), y2, max(x2 - w_crop, 0), x2))
    return windows


@MODELS.register_module()
class BatchedSlideEncoderDecoder(EncoderDecoder):
    """``EncoderDecoder`` with batched slide inference (``test_cfg.crop_batch_size``)."""

    def slide_inference(self, inputs: Tensor, batch_img_metas: list[dict]) -> Tensor:
        batch_size, _, height, width = inputs.shape
        windows = slide_windows(height, width, self.test_cfg.crop_size, self.test_cfg.stride)
        chunk = int(self.test_cfg.get('crop_batch_size', 8))
        # [windows * B, C, h_crop, w_crop], window-major: crop i belongs to window i // B, image i % B
        crops = torch.cat([inputs[:, :, y1:y2, x1:x2] for y1, y2, x1, x2 in windows])
        metas = [dict(batch_img_metas[0], img_shape=crops.shape[2:])] * chunk
        preds = inputs.new_zeros((batch_size, self.out_channels, height, width))
        count = inputs.new_zeros((1, 1, height, width))
        for y1, y2, x1, x2 in windows:
            count[:, :, y1:y2, x1:x2] += 1
        for start in range(0, len(crops), chunk):
            logits = self.encode_decode(crops[start:start + chunk], metas[:min(chunk, len(crops) - start)])
            for i, logit in enumerate(logits, start):
                y1, y2, x1, x2 = windows[i // batch_size]
                preds[i % batch_size, :, y1:y2, x1:x2] += logit
        return preds / count
