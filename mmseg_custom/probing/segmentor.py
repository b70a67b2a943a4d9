"""``ProbeSweepSegmentor``: the frozen backbone runs once per batch (once per crop in slide inference)
and every probe of a ``ProbeSweepHead`` trains and predicts on its maps.

Training is mmseg's: the probes' losses are summed (each probe's parameters get the gradient of its own
loss only) and one optimizer steps them, one parameter group set per probe
(``ProbeSweepOptimWrapperConstructor``). Prediction yields every probe's label map: ``probe_sem_seg``
(name -> [1, H, W]) on each data sample, scored by ``ProbeSweepIoUMetric``; ``pred_sem_seg`` is the
first probe's, for the visualisation hook. Slide inference encodes the crops once, then sums each
probe's crop logits in mmseg's order, one image-sized sum at a time.
"""
from typing import Iterator, Optional

import torch
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from torch import Tensor

from ..models.segmentors.batched_slide import BatchedSlideEncoderDecoder, crop_logits
from .head import ProbeSweepHead


@MODELS.register_module()
class ProbeSweepSegmentor(BatchedSlideEncoderDecoder):
    """mmseg's ``EncoderDecoder`` arguments; ``decode_head`` a ``ProbeSweepHead`` whose ``blocks`` are the
    backbone's ``out_indices``; a frozen backbone, no neck, no auxiliary head."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        if not isinstance(self.decode_head, ProbeSweepHead):
            raise ValueError(f'ProbeSweepSegmentor: decode_head must be a ProbeSweepHead, got '
                             f'{type(self.decode_head).__name__}')
        if self.with_neck or self.with_auxiliary_head:
            raise ValueError('ProbeSweepSegmentor: the probes read the backbone directly: no neck, no auxiliary head')
        trainable = [name for name, p in self.backbone.named_parameters() if p.requires_grad]
        if trainable:
            raise ValueError(f'ProbeSweepSegmentor: the backbone must be frozen (frozen=True); {trainable[0]} and '
                             f'{len(trainable) - 1} more parameters would train')
        taps = list(getattr(self.backbone, 'out_indices', []))
        if taps != self.decode_head.blocks:
            raise ValueError(f'ProbeSweepSegmentor: the backbone taps blocks {taps} but the probes read blocks '
                             f'{self.decode_head.blocks}: set backbone.out_indices to the sweep\'s blocks, in order')

    def extract_feat(self, inputs: Tensor) -> list[Tensor]:
        """The maps made contiguous once here, not by each probe (``LinearProbeHead`` makes its input contiguous)."""
        return [features.contiguous() for features in super().extract_feat(inputs)]

    def encode_decode(self, inputs: Tensor, batch_img_metas: list[dict]) -> Tensor:
        raise NotImplementedError('a probe sweep predicts one label map per probe (predict); it has no single '
                                  'logits map for test-time augmentation or mmseg\'s inference APIs')

    def predict(self, inputs: Tensor, data_samples: Optional[list] = None) -> list:
        if data_samples is None:  # as mmseg's EncoderDecoder.predict: the input's own shape
            data_samples = [SegDataSample(metainfo=dict(ori_shape=inputs.shape[2:], img_shape=inputs.shape[2:],
                                                        pad_shape=inputs.shape[2:], padding_size=[0, 0, 0, 0]))
                            for _ in range(inputs.shape[0])]
        metas = [sample.metainfo for sample in data_samples]
        maps: list[dict[str, Tensor]] = [{} for _ in range(inputs.shape[0])]
        first = None
        for name, logits in self.probe_logits(inputs, metas):
            data_samples = self.postprocess_result(logits, data_samples)
            first = first or [sample.pred_sem_seg for sample in data_samples]
            for sample, labels in zip(data_samples, maps):
                labels[name] = sample.pred_sem_seg.data
        for sample, labels, pred in zip(data_samples, maps, first):
            del sample.seg_logits  # the last probe's; K of them would not fit
            sample.pred_sem_seg = pred
            sample.set_field(labels, 'probe_sem_seg', field_type='data')
        return data_samples

    def probe_logits(self, inputs: Tensor, metas: list[dict]) -> Iterator[tuple[str, Tensor]]:
        """(probe name, logits [B, classes, H, W]) for every probe, from one encoding of ``inputs``."""
        if self.test_cfg.get('mode', 'whole') == 'whole':
            features, padded_metas, crop = self.encode(inputs, metas)
            for name, probe in self.decode_head.items():
                yield name, crop_logits(probe.predict(features, padded_metas, self.test_cfg), crop)
            return
        encoded = []
        for _, part in self.crop_chunks(self.crop_jobs([inputs])):
            x = torch.cat([inputs[i:i + 1, :, y1:y2, x1:x2] for _, i, (y1, y2, x1, x2) in part])
            encoded.append((part, self.encode(x, [dict(metas[0], img_shape=torch.Size(x.shape[2:]))] * len(part))))
        counts = self._window_counts(inputs)
        for name, probe in self.decode_head.items():
            preds = inputs.new_zeros((inputs.shape[0], self.out_channels, *inputs.shape[2:]))
            for part, (features, padded_metas, crop) in encoded:
                logits = crop_logits(probe.predict(features, padded_metas, self.test_cfg), crop)
                for (_, i, (y1, y2, x1, x2)), logit in zip(part, logits):
                    preds[i, :, y1:y2, x1:x2] += logit
            yield name, preds.div_(counts)
