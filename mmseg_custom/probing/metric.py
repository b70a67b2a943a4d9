"""``ProbeSweepIoUMetric``: mmseg's IoU, computed for every probe of a sweep from the same pass.

Each data sample carries ``probe_sem_seg`` (probe name -> label map, ``ProbeSweepSegmentor``); every
probe's areas are mmseg's ``IoUMetric.intersect_and_union`` and its scores mmseg's
``total_area_to_metrics``, rounded as mmseg rounds them. Keys: ``probe/<name>/{aAcc,mIoU,mAcc}``, and
``mIoU`` / ``aAcc`` / ``mAcc`` of the best probe (by mIoU), whose name is ``best_probe`` - so
``save_best='mIoU'`` keeps the checkpoint of the best probe's best validation. The log shows a table of
every probe, best first.
"""
from collections import OrderedDict
from typing import Sequence

import numpy as np
from mmengine.logging import MMLogger, print_log
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS
from prettytable import PrettyTable

SCORES = ('aAcc', 'mIoU', 'mAcc')


@METRICS.register_module()
class ProbeSweepIoUMetric(IoUMetric):
    """``IoUMetric``'s arguments (``iou_metrics`` stays ['mIoU']; no ``output_dir`` / ``format_only``)."""

    def __init__(self, **kwargs) -> None:
        for key in ('output_dir', 'format_only'):
            if kwargs.get(key):
                raise ValueError(f'ProbeSweepIoUMetric: {key} is not supported')
        if list(kwargs.get('iou_metrics', ['mIoU'])) != ['mIoU']:
            raise ValueError(f'ProbeSweepIoUMetric: iou_metrics {kwargs["iou_metrics"]}; it scores every probe by mIoU')
        super().__init__(**kwargs)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        num_classes = len(self.dataset_meta['classes'])
        for sample in data_samples:
            if 'probe_sem_seg' not in sample:
                raise ValueError('ProbeSweepIoUMetric: the predictions carry no probe_sem_seg: the model must be a '
                                 'ProbeSweepSegmentor')
            label = sample['gt_sem_seg']['data'].squeeze()
            self.results.append({name: self.intersect_and_union(pred.squeeze(), label.to(pred), num_classes,
                                                                self.ignore_index)
                                 for name, pred in sample['probe_sem_seg'].items()})

    def compute_metrics(self, results: list) -> dict:
        scores = {name: self.probe_scores([result[name] for result in results]) for name in results[0]}
        ranked = sorted(scores, key=lambda name: -scores[name]['mIoU'])
        best = ranked[0]
        table = PrettyTable(['probe', *SCORES])
        for name in ranked:
            table.add_row([name, *(f'{scores[name][key]:.2f}' for key in SCORES)])
        logger = MMLogger.get_current_instance()
        print_log(f'probe sweep: {len(scores)} probes, best {best} (mIoU {scores[best]["mIoU"]:.2f})\n'
                  f'{table.get_string()}', logger=logger)
        metrics = OrderedDict((key, scores[best][key]) for key in SCORES)
        metrics['best_probe'] = best
        for name in scores:
            metrics.update({f'probe/{name}/{key}': scores[name][key] for key in SCORES})
        return metrics

    def probe_scores(self, areas: list) -> dict[str, float]:
        """aAcc / mIoU / mAcc in percent, from one probe's per-image areas, as ``IoUMetric`` computes them."""
        intersect, union, pred, label = (sum(column) for column in zip(*areas))
        per_class = self.total_area_to_metrics(intersect, union, pred, label, ['mIoU'], self.nan_to_num, self.beta)
        return {('aAcc' if key == 'aAcc' else 'm' + key): float(np.round(np.nanmean(value) * 100, 2))
                for key, value in per_class.items()}
