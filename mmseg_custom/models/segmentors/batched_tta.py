"""Multi-scale + flip test-time augmentation whose slide inference runs all augmentations in one stream.

mmseg's ``SegTTAModel`` (mmengine's ``BaseTTAModel``) runs the model once per augmentation of a batch
(six scales x two flips is twelve slide inferences, each encoding the few crops of its own image size)
and keeps every augmentation's image-sized logits until it merges them. ``BatchedSegTTAModel`` hands
every augmentation's preprocessed batch to the segmentor's ``slide_inference_many``, so consecutive
crops of equal shape from all scales and flips share encoder batches, and merges each augmentation as
it arrives: post-processed (padding removed, flip undone, logits resized to the image), its softmax
added to a running sum. The result is ``SegTTAModel.merge_preds``'s: the mean of the softmaxes (the
sigmoids for one class), its argmax (threshold), ``seg_logits`` those of the last augmentation. Another
segmentor or the whole-image mode runs mmseg's loop unchanged.
"""
from mmseg.models.segmentors import SegTTAModel
from mmseg.registry import MODELS
from mmengine.structures import PixelData

from .batched_slide import BatchedSlideEncoderDecoder


@MODELS.register_module()
class BatchedSegTTAModel(SegTTAModel):
    """``SegTTAModel`` with the augmentations' slide inferences batched together and merged as they come."""

    def test_step(self, data):
        segmentor = self.module
        if not isinstance(segmentor, BatchedSlideEncoderDecoder) or segmentor.test_cfg.get('mode') != 'slide':
            return super().test_step(data)
        num_augs = len(data[next(iter(data))])  # as BaseTTAModel: {'inputs': [aug...], 'data_samples': [aug...]}
        augs = [segmentor.data_preprocessor({key: value[i] for key, value in data.items()}, False)
                for i in range(num_augs)]
        metas = [sample.metainfo for sample in augs[0]['data_samples']]
        sums, last = None, None
        for index, logits in segmentor.slide_inference_many([aug['inputs'] for aug in augs], metas):
            last = segmentor.postprocess_result(logits, augs[index]['data_samples'])
            scores = [self._scores(sample.seg_logits.data) for sample in last]
            sums = scores if sums is None else [total.add_(s) for total, s in zip(sums, scores)]
        predictions = []
        for first, sample, total in zip(augs[0]['data_samples'], last, sums):
            total /= num_augs
            pred = (total > segmentor.decode_head.threshold).to(total).squeeze(1) if segmentor.out_channels == 1 \
                else total.argmax(dim=0)
            sample.set_data({'pred_sem_seg': PixelData(data=pred)})
            if hasattr(first, 'gt_sem_seg'):
                sample.set_data({'gt_sem_seg': first.gt_sem_seg})
            sample.set_metainfo({'img_path': first.img_path})
            predictions.append(sample)
        return predictions

    def _scores(self, logits):
        return logits.softmax(dim=0) if self.module.out_channels > 1 else logits.sigmoid()
