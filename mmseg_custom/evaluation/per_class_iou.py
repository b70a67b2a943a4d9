"""mmseg's ``IoUMetric`` that also writes its per-class table as CSV (``tools/test.py`` sets ``csv_file``).

mmseg prints the per-class table (IoU and accuracy per class, in percent) to the log and returns only
the means; the CSV keeps the same figures for a spreadsheet or a comparison between runs: one row a
class, its name first, the percentages unrounded (mmseg's table rounds to two decimals), ``nan`` for a
class absent from both the labels and the predictions.
"""
import csv
from typing import Optional

import numpy as np
from mmengine.logging import print_log
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS

from internvl.checkpoint import write_atomic


@METRICS.register_module()
class PerClassIoUMetric(IoUMetric):
    """``IoUMetric`` plus ``csv_file``: where to write the per-class table (nothing written when None)."""

    def __init__(self, csv_file: Optional[str] = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.csv_file = csv_file

    def compute_metrics(self, results: list) -> dict[str, float]:
        metrics = super().compute_metrics(results)
        if self.csv_file and not self.format_only:
            self.write_csv(self.per_class(results), self.csv_file)
            print_log(f'per-class results written to {self.csv_file}', logger='current')
        return metrics

    def per_class(self, results: list) -> dict[str, np.ndarray]:
        """{metric name: per-class values in percent} from the per-image areas ``process`` collected."""
        intersect, union, pred_label, label = (sum(areas) for areas in zip(*results))
        metrics = self.total_area_to_metrics(intersect, union, pred_label, label, self.metrics, self.nan_to_num,
                                             self.beta)
        metrics.pop('aAcc', None)
        return {name: np.asarray(values, dtype=np.float64) * 100 for name, values in metrics.items()}

    def write_csv(self, per_class: dict[str, np.ndarray], path: str) -> None:
        names = list(per_class)

        def write(tmp: str) -> None:
            with open(tmp, 'w', newline='') as f:
                writer = csv.writer(f)
                writer.writerow(['class'] + names)
                for i, cls in enumerate(self.dataset_meta['classes']):
                    writer.writerow([cls] + [f'{per_class[n][i]:.4f}' for n in names])
        write_atomic(path, write)
