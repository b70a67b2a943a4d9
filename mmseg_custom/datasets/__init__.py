from .fewshot import fewshot_subset, write_fewshot_splits
from .synthetic_ade import make_scene, write_synthetic_ade

__all__ = ['fewshot_subset', 'make_scene', 'write_fewshot_splits', 'write_synthetic_ade']
