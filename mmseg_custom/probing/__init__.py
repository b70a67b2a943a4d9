"""Frozen-backbone probing studies: many linear probes trained on ONE backbone pass (``ProbeSweepHead``,
``ProbeSweepSegmentor``, their optimizer and metric), a feature cache to train them with no backbone in
memory (``feature_cache``, ``cached_data``), and the study's table and plot (``report``)."""
from .alone import lone_probe_config
from .cached_data import CachedFeatureDataset, CachedFeaturePreProcessor, CachedFeatures, use_feature_cache
from .feature_cache import write_feature_cache
from .head import ProbeSetting, ProbeSweepHead, probe_grid, probe_name, probe_seed
from .metric import ProbeSweepIoUMetric
from .optim import ProbeSweepOptimWrapper, ProbeSweepOptimWrapperConstructor
from .segmentor import ProbeSweepSegmentor

__all__ = ['CachedFeatureDataset', 'CachedFeaturePreProcessor', 'CachedFeatures', 'ProbeSetting', 'ProbeSweepHead',
           'ProbeSweepIoUMetric', 'ProbeSweepOptimWrapper', 'ProbeSweepOptimWrapperConstructor', 'ProbeSweepSegmentor',
           'lone_probe_config', 'probe_grid', 'probe_name', 'probe_seed', 'use_feature_cache', 'write_feature_cache']
