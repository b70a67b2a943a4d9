"""The segmentation side of the analysis tools: the memory planner (``memory``,
``tools/analysis/estimate_memory.py``) and the dataset check (``data_check``, ``tools/check_dataset.py``)."""
from .data_check import check_segmentation
from .memory import plan_config

__all__ = ['check_segmentation', 'plan_config']
