"""mmseg's EncoderDecoder whose sliding-window inference runs the crops in batches.

mmseg 1.2.2 encodes the crops of an image one after another and adds each crop's logits into the
image-sized sum through a zero-padded copy of the whole image ([B, classes, H, W] per window).
Here every crop of every image in the batch is gathered first and encoded ``test_cfg.crop_batch_size``
at a time (default 8), and each crop's logits are added in place into its window; the sum is divided
by the number of windows covering each pixel, exactly as mmseg does, so the result is the same.
``slide_inference_many`` does the same for several batches of other sizes in one stream of crops: the
test-time augmentations of ``BatchedSegTTAModel``.

Two more things every InternViT segmentor needs: the features reach the neck or decode head in that
module's dtype (``cast_to_consumer``: the precision policy), and an input whose sides are not
multiples of the backbone's ``size_divisor`` (the ViT patch; 32 for the adapter) - a crop of an image
smaller than the crop size, any whole-inference size - is padded at the bottom / right and its logits
are cropped back, so they align with the image. And a training label outside the class range (not
the ignore index) is an error naming its label-map file, where the loss would fail on an index
without saying which file.
"""
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from torch import Tensor

from internvl.utils.sliding import slide_windows

from internvl_mmlab.errors import BadDataError
from internvl_mmlab.precision import cast_to_consumer


def crop_logits(logits: Tensor, crop: Optional[tuple[int, int]]) -> Tensor:
    """``logits`` of a padded input cropped back to the input's (height, width); None: as they are."""
    return logits if crop is None else logits[..., :crop[0], :crop[1]]


def check_labels(data_samples: list, num_classes: int, ignore_index: int) -> None:
    """Refuse a label value that is neither a class (0 .. num_classes - 1) nor ``ignore_index``."""
    for sample in data_samples:
        labels = sample.gt_sem_seg.data
        bad = labels[(labels >= num_classes) & (labels != ignore_index) | (labels < 0)]
        if bad.numel():
            values = sorted(set(bad.unique().tolist()))[:10]
            raise BadDataError(f'{sample.metainfo.get("seg_map_path", "a label map")}: label values {values} are '
                             f'outside the class range 0..{num_classes - 1} (ignore index {ignore_index}; after '
                             f'reduce_zero_label where the pipeline applies it). tools/check_dataset.py lists '
                             f'every such file')


@MODELS.register_module()
class BatchedSlideEncoderDecoder(EncoderDecoder):
    """``EncoderDecoder`` with batched slide inference (``test_cfg.crop_batch_size``)."""

    def loss(self, inputs: Tensor, data_samples: list) -> dict:
        check_labels(data_samples, self.decode_head.num_classes, self.decode_head.ignore_index)
        return super().loss(inputs, data_samples)

    def extract_feat(self, inputs: Tensor) -> list[Tensor]:
        features = cast_to_consumer(self.backbone(inputs), self.neck if self.with_neck else self.decode_head)
        return self.neck(features) if self.with_neck else list(features)

    def encode(self, inputs: Tensor, batch_img_metas: list[dict]) -> tuple[list[Tensor], list[dict], Optional[tuple[int, int]]]:
        """The features of ``inputs`` padded at the bottom / right to the backbone's ``size_divisor``, the
        metas of the padded size, and the (height, width) to crop the logits back to (None: no padding)."""
        height, width = inputs.shape[-2:]
        divisor = getattr(self.backbone, 'size_divisor', 1)
        pad_h, pad_w = -height % divisor, -width % divisor
        if not pad_h and not pad_w:
            return self.extract_feat(inputs), batch_img_metas, None
        padded = F.pad(inputs, (0, pad_w, 0, pad_h))
        return self.extract_feat(padded), [dict(meta, img_shape=padded.shape[2:]) for meta in batch_img_metas], (height, width)

    def encode_decode(self, inputs: Tensor, batch_img_metas: list[dict]) -> Tensor:
        features, metas, crop = self.encode(inputs, batch_img_metas)
        return crop_logits(self.decode_head.predict(features, metas, self.test_cfg), crop)

    def slide_inference(self, inputs: Tensor, batch_img_metas: list[dict]) -> Tensor:
        return next(self.slide_inference_many([inputs], batch_img_metas))[1]

    def slide_inference_many(self, batches: list[Tensor], batch_img_metas: list[dict]) -> Iterator[tuple[int, Tensor]]:
        """Slide inference of several batches (one per test-time augmentation, each of its own size) in
        one stream of crops: consecutive crops of equal shape, across batches too, are encoded
        ``crop_batch_size`` at a time. Yields (batch index, logits [B, classes, H, W]) in order, each as
        soon as its last crop is in, so only the batches in flight hold their image-sized sums. Per
        pixel the windows are summed in mmseg's order and divided by their count."""
        preds, done = {}, 0
        jobs = self.crop_jobs(batches)
        last_job = {b: n for n, (b, _, _) in enumerate(jobs)}
        for start, part in self.crop_chunks(jobs):
            x = torch.cat([batches[b][i:i + 1, :, y1:y2, x1:x2] for b, i, (y1, y2, x1, x2) in part])
            metas = [dict(batch_img_metas[0], img_shape=torch.Size(x.shape[2:]))] * len(part)
            for (b, i, (y1, y2, x1, x2)), logit in zip(part, self.encode_decode(x, metas)):
                if b not in preds:
                    preds[b] = batches[b].new_zeros((batches[b].shape[0], self.out_channels, *batches[b].shape[2:]))
                preds[b][i, :, y1:y2, x1:x2] += logit
            while done < len(batches) and last_job[done] < start + len(part):
                yield done, preds.pop(done).div_(self._window_counts(batches[done]))
                done += 1

    def crop_jobs(self, batches: list[Tensor]) -> list[tuple[int, int, tuple[int, int, int, int]]]:
        """(batch, image, window) of every crop, batch-major; within a batch window-major, as mmseg visits them."""
        jobs = []
        for b, inputs in enumerate(batches):
            windows = slide_windows(*inputs.shape[2:], self.test_cfg.crop_size, self.test_cfg.stride)
            jobs += [(b, i, window) for window in windows for i in range(inputs.shape[0])]
        return jobs

    def crop_chunks(self, jobs: list) -> Iterator[tuple[int, list]]:
        """(index of the first, chunk) of consecutive jobs of one crop shape, ``test_cfg.crop_batch_size`` at most."""
        chunk, start = int(self.test_cfg.get('crop_batch_size', 8)), 0
        while start < len(jobs):
            shape = self._crop_shape(jobs[start][2])
            stop = start + 1
            while stop < min(start + chunk, len(jobs)) and self._crop_shape(jobs[stop][2]) == shape:
                stop += 1
            yield start, jobs[start:stop]
            start = stop

    @staticmethod
    def _crop_shape(window: tuple[int, ...]) -> tuple[int, int]:
        y1, y2, x1, x2 = window
        return y2 - y1, x2 - x1

    def _window_counts(self, inputs: Tensor) -> Tensor:
        """[1, 1, H, W]: how many windows cover each pixel."""
        count = inputs.new_zeros((1, 1, *inputs.shape[2:]))
        for y1, y2, x1, x2 in slide_windows(*inputs.shape[2:], self.test_cfg.crop_size, self.test_cfg.stride):
            count[:, :, y1:y2, x1:x2] += 1
        return count
