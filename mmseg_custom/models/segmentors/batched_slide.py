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

from internvl.utils.sliding import slide_windows


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
