"""Training and validating probes from a feature cache (written by ``tools/cache_features.py``,
``mmseg_custom.probing.feature_cache``), with no backbone in memory.

- ``CachedFeatureDataset`` reads a cache split memory-mapped (safetensors): per sample the tapped maps
  ``[blocks, C, h, w]`` (the blocks asked for, in that order) and the label map as the live run's data
  preprocessor handed it to the loss, with the sample's metainfo.
- ``CachedFeaturePreProcessor`` stacks them ([B, blocks, C, h, w]) on the model's device;
- ``CachedFeatures`` stands where the backbone was and hands the segmentor one map per block.
- ``use_feature_cache(cfg, root)`` switches a sweep config to the cache (``tools/train.py --feature-cache``).

The maps keep the cache's dtype until the segmentor casts them to the probes' (fp32), exactly as it casts
the live backbone's. A cache scores at its fixed pipeline's resolution: each sample's ``ori_shape`` is its
label's shape, and a flipped view is a sample in its own right (its label is flipped with it).
"""
import json
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from mmengine.config import Config
from mmengine.dataset import BaseDataset
from mmengine.model import BaseDataPreprocessor, BaseModule
from mmengine.structures import PixelData
from mmseg.registry import DATASETS, MODELS
from mmseg.structures import SegDataSample
from safetensors import safe_open
from torch import Tensor

MANIFEST = 'manifest.json'


def read_manifest(cache_dir: Union[str, Path], complete: bool = True) -> dict:
    """The manifest of a cache split; ``complete``: refuse one whose writing has not finished."""
    path = Path(cache_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f'{cache_dir}: not a feature cache (no {MANIFEST}); write one with '
                                f'tools/cache_features.py')
    manifest = json.loads(path.read_text())
    if complete and not manifest.get('complete'):
        raise ValueError(f'{cache_dir}: the feature cache is incomplete ({manifest.get("written", 0)} of '
                         f'{manifest["num_shards"]} shards); rerun tools/cache_features.py with the same arguments '
                         f'to finish it')
    return manifest


def shard_path(cache_dir: Union[str, Path], index: int) -> Path:
    return Path(cache_dir) / f'shard-{index:05d}.safetensors'


@DATASETS.register_module()
class CachedFeatureDataset(BaseDataset):
    """``cache_dir``: one split of a cache; ``blocks``: the tapped blocks to read (default all, in the
    cache's order). mmengine's ``BaseDataset`` arguments (``indices``, ``lazy_init``) apply."""

    def __init__(self, cache_dir: str, blocks: Optional[Sequence[int]] = None, **kwargs) -> None:
        self.cache_dir = Path(cache_dir)
        self.manifest = read_manifest(cache_dir)
        cached = self.manifest['blocks']
        missing = [b for b in blocks or [] if b not in cached]
        if missing:
            raise ValueError(f'{cache_dir}: the cache holds blocks {cached}, not {missing}; cache them with '
                             f'tools/cache_features.py --blocks')
        self.rows = None if blocks is None or list(blocks) == cached else [cached.index(b) for b in blocks]
        self._files: dict[int, object] = {}
        kwargs.setdefault('serialize_data', False)
        super().__init__(metainfo=self.manifest['metainfo'], pipeline=[], **kwargs)

    def load_data_list(self) -> list[dict]:
        size = self.manifest['shard_size']
        return [dict(sample=j, shard=j // size) for j in range(self.manifest['num_samples'])]

    def _shard(self, index: int):
        if index not in self._files:  # opened lazily, in the process (loader worker) that reads it
            self._files[index] = safe_open(str(shard_path(self.cache_dir, index)), framework='pt')
        return self._files[index]

    def prepare_data(self, idx: int) -> dict:
        info = self.get_data_info(idx)
        shard, j = self._shard(info['shard']), info['sample']
        features = shard.get_tensor(f'{j}.features')
        if self.rows is not None:
            features = features[self.rows]
        sample = SegDataSample(metainfo=json.loads(shard.metadata()[str(j)]))
        sample.gt_sem_seg = PixelData(data=shard.get_tensor(f'{j}.label').long()[None])
        return dict(inputs=features, data_samples=sample)

    def __getstate__(self) -> dict:  # open files stay in the process that opened them
        return dict(self.__dict__, _files={})


@MODELS.register_module()
class CachedFeaturePreProcessor(BaseDataPreprocessor):
    """A batch of cached samples -> inputs [B, blocks, C, h, w] and their data samples, on the model's device."""

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        shapes = {tuple(x.shape) for x in data['inputs']}
        if len(shapes) != 1:
            raise ValueError(f'cached features of different shapes in one batch: {sorted(shapes)}')
        return dict(inputs=torch.stack(data['inputs']), data_samples=data['data_samples'])


@MODELS.register_module()
class CachedFeatures(BaseModule):
    """The backbone of a cached run: [B, blocks, C, h, w] -> one map [B, C, h, w] per block of ``out_indices``."""

    size_divisor = 1

    def __init__(self, out_indices: Sequence[int]) -> None:
        super().__init__()
        self.out_indices = [int(b) for b in out_indices]

    def forward(self, inputs: Tensor) -> tuple[Tensor, ...]:
        if inputs.ndim != 5 or inputs.shape[1] != len(self.out_indices):
            raise ValueError(f'CachedFeatures: expected [B, {len(self.out_indices)}, C, h, w] (one map per block of '
                             f'{self.out_indices}), got {list(inputs.shape)}')
        return tuple(inputs.unbind(1))


CACHE_LOADERS = {'train': ('train_dataloader',), 'val': ('val_dataloader', 'test_dataloader')}


def use_feature_cache(cfg: Config, root: Union[str, Path]) -> Config:
    """``cfg`` (a probe sweep) training and validating from the cache splits ``root/train`` and ``root/val``:
    the backbone replaced by ``CachedFeatures``, whole-image inference at the cache's resolution. The
    caches must hold the sweep's blocks, from the config's backbone."""
    head = cfg.model.decode_head
    if head.get('type') != 'ProbeSweepHead':
        raise ValueError(f'--feature-cache needs a probe sweep config (decode_head ProbeSweepHead), got '
                         f'{head.get("type")}')
    backbone = {key: cfg.model.backbone.get(key) for key in ('arch', 'pretrained')}
    for split, loaders in CACHE_LOADERS.items():
        split_dir = Path(root) / split
        manifest = read_manifest(split_dir)
        if manifest['backbone'] != json.loads(json.dumps(backbone)):
            raise ValueError(f'{split_dir}: cached from backbone {manifest["backbone"]}, the config has {backbone}')
        for loader in loaders:
            if cfg.get(loader):
                cfg[loader].dataset = dict(type='CachedFeatureDataset', cache_dir=str(split_dir), blocks=head.blocks)
    cfg.model.backbone = dict(type='CachedFeatures', out_indices=head.blocks)
    cfg.model.data_preprocessor = dict(type='CachedFeaturePreProcessor')
    cfg.model.test_cfg = dict(mode='whole')
    return cfg
