"""The detection side of the analysis tools: the FLOPs count's data samples (``flops``,
``tools/analysis/get_flops.py``) and the dataset check (``data_check``, ``tools/check_dataset.py``)."""
from .data_check import check_coco, check_coco_dataset
from .flops import detection_samples

__all__ = ['check_coco', 'check_coco_dataset', 'detection_samples']
