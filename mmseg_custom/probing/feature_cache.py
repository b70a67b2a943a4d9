"""Writing a feature cache: the frozen backbone run ONCE over a dataset split, its tapped maps stored so
that probes train and validate from them (``cached_data``) with no backbone in memory.

The pipeline must be deterministic and of a fixed size (so a sample's maps do not depend on its batch):
the config's ``fixed_pipeline`` if it has one (the sweep recipes: the test pipeline's resize, then a
centre crop to the crop size), else its ``test_pipeline``; ``flip`` adds the horizontally flipped copy as
a second view. Each batch goes through the config's data preprocessor as in training (normalised, padded
to its ``size``), so a sample's maps and label are exactly what a live run on that pipeline feeds the
probes. Layout of ``out/``:

- ``manifest.json``: what was cached (config, backbone, blocks, dtype, views, pipeline, shapes, classes)
  and how far the writing got; a rerun with other arguments is refused, the same arguments resume;
- ``shard-00000.safetensors`` ...: ``shard_size`` samples each (sample j of view v is image j - v * N),
  tensors ``{j}.features`` [blocks, C, h, w] in ``dtype`` and ``{j}.label`` [H, W] (uint8 where the
  labels fit), the metainfo as the metadata ``{j}``. Each shard is written to a temporary file and
  renamed, so a kill leaves whole shards only, and a rerun writes the missing ones.
"""
import json
import math
import os
import shutil
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.logging import print_log
from mmengine.registry import DefaultScope
from mmseg.registry import DATASETS, MODELS
from safetensors.torch import save_file
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from internvl_mmlab.errors import BadDataError
from internvl_mmlab.precision import DTYPES

from .cached_data import MANIFEST, read_manifest, shard_path

META_KEYS = ('img_path', 'seg_map_path', 'img_shape', 'pad_shape', 'reduce_zero_label')


def cache_pipeline(cfg: Config, flip: bool) -> list[list[dict]]:
    """The pipeline of each view: the config's ``fixed_pipeline`` (else ``test_pipeline``), and with
    ``flip`` the same with a certain horizontal flip before packing."""
    pipeline = [dict(t) for t in (cfg.get('fixed_pipeline') or cfg.test_pipeline)]
    if pipeline[-1]['type'] != 'PackSegInputs':
        raise ValueError('the cache pipeline must end with PackSegInputs')
    views = [pipeline]
    if flip:
        views.append(pipeline[:-1] + [dict(type='RandomFlip', prob=1.0, direction='horizontal'), pipeline[-1]])
    return views


def _arguments(cfg: Config, config_path: str, split: str, blocks: list[int], dtype: str, views: list) -> dict:
    dataset = dict(cfg[f'{split}_dataloader'].dataset)
    dataset.pop('pipeline', None)
    return dict(config=str(config_path), split=split, dataset=json.loads(json.dumps(dataset, default=str)),
                backbone={key: cfg.model.backbone.get(key) for key in ('arch', 'pretrained')}, blocks=blocks,
                dtype=dtype, views=['orig', 'flip'][:len(views)], pipeline=json.loads(json.dumps(views, default=str)))


def write_feature_cache(cfg: Config, config_path: str, out_dir: Union[str, Path], split: str = 'train',
                        blocks: Optional[Sequence[int]] = None, dtype: str = 'float16', flip: bool = False,
                        shard_size: int = 64, batch_size: int = 4, num_workers: int = 2,
                        device: str = 'cpu') -> Path:
    """Cache ``split`` ('train' or 'val') of the config's dataset under ``out_dir`` -> ``out_dir``. ``blocks``:
    the backbone's blocks to store (default: those the config's probes read)."""
    if dtype not in DTYPES:
        raise ValueError(f'feature cache dtype {dtype!r}: expected one of {list(DTYPES)}')
    out_dir = Path(out_dir)
    blocks = [int(b) for b in (blocks or cfg.model.decode_head.blocks)]
    if not cfg.model.backbone.get('pretrained'):
        raise ValueError('model.backbone.pretrained is not set: a cache of a randomly initialised backbone would '
                         'not be the study\'s (give the weights with --cfg-options model.backbone.pretrained=PATH)')
    views = cache_pipeline(cfg, flip)
    arguments = _arguments(cfg, config_path, split, blocks, dtype, views)
    with DefaultScope.overwrite_default_scope('mmseg'):
        datasets = [DATASETS.build(dict(cfg[f'{split}_dataloader'].dataset, pipeline=view)) for view in views]
        preprocessor = MODELS.build(cfg.model.data_preprocessor).to(device)
        backbone = MODELS.build(dict(cfg.model.backbone, out_indices=blocks))
    num_images = len(datasets[0])
    num_samples = num_images * len(views)
    first = preprocessor(pseudo_collate([datasets[0][0]]), True)
    height, width = first['inputs'].shape[2:]
    patch = backbone.size_divisor
    feature_shape = [len(blocks), backbone.vit.embed_dims, math.ceil(height / patch), math.ceil(width / patch)]
    label_shape = list(first['data_samples'][0].gt_sem_seg.data.shape[1:])
    manifest = dict(arguments, num_images=num_images, num_samples=num_samples, shard_size=shard_size,
                    num_shards=math.ceil(num_samples / shard_size), feature_shape=feature_shape,
                    label_shape=label_shape, metainfo=json.loads(json.dumps(datasets[0].metainfo, default=list)))
    _start_or_resume(out_dir, manifest)
    backbone.init_weights()  # the pretrained weights, as the runner loads them
    backbone.to(device).eval()
    written = sum(shard_path(out_dir, n).is_file() for n in range(manifest['num_shards']))
    progress = tqdm(total=num_samples, initial=min(written * shard_size, num_samples), unit='sample',
                    desc=f'caching {split}')
    for n in range(manifest['num_shards']):
        if shard_path(out_dir, n).is_file():
            continue
        samples = range(n * shard_size, min((n + 1) * shard_size, num_samples))
        tensors, metadata = {}, {}
        for view in range(len(views)):
            images = [j - view * num_images for j in samples if j // num_images == view]
            if not images:
                continue
            loader = DataLoader(Subset(datasets[view], images), batch_size=batch_size, num_workers=num_workers,
                                collate_fn=pseudo_collate)
            j = images[0] + view * num_images
            for batch in loader:
                data = preprocessor(batch, True)
                with torch.no_grad():
                    maps = torch.stack(backbone(data['inputs']), dim=1).to(DTYPES[dtype])
                for features, sample in zip(maps, data['data_samples']):
                    _check_shape(sample, features, feature_shape, label_shape)
                    label = sample.gt_sem_seg.data[0]
                    small = label.min() >= 0 and label.max() <= 255
                    tensors[f'{j}.features'] = features.cpu().contiguous()
                    tensors[f'{j}.label'] = label.to(torch.uint8 if small else torch.int32).cpu().contiguous()
                    meta = {key: sample.metainfo[key] for key in META_KEYS if key in sample.metainfo}
                    metadata[str(j)] = json.dumps(dict(meta, ori_shape=label_shape, view=manifest['views'][view]),
                                                  default=list)
                    j += 1
                    progress.update()
        temporary = shard_path(out_dir, n).with_suffix('.tmp')
        save_file(tensors, str(temporary), metadata=metadata)
        os.replace(temporary, shard_path(out_dir, n))
        manifest['written'] = n + 1
        _write_manifest(out_dir, manifest)
    progress.close()
    manifest['complete'] = True
    _write_manifest(out_dir, manifest)
    return out_dir


def _check_shape(sample, features: torch.Tensor, feature_shape: list, label_shape: list) -> None:
    label = list(sample.gt_sem_seg.data.shape[1:])
    if list(features.shape) != feature_shape or label != label_shape:
        raise BadDataError(f'{sample.metainfo.get("img_path")}: after the pipeline its label is {label} and its maps '
                           f'{list(features.shape)}, the first sample\'s {label_shape} and {feature_shape}: a feature '
                           f'cache needs a fixed-size pipeline (fixed_pipeline in the config: resize, then crop)')


def _start_or_resume(out_dir: Path, manifest: dict) -> None:
    """Print the size; refuse a folder that holds another cache or a disk without room; write the manifest."""
    sample_bytes = (math.prod(manifest['feature_shape']) * DTYPES[manifest['dtype']].itemsize
                    + math.prod(manifest['label_shape']))
    total = sample_bytes * manifest['num_samples']
    print_log(f'feature cache of {manifest["split"]}: {manifest["num_samples"]} samples ({manifest["num_images"]} '
              f'images x {len(manifest["views"])} views), maps {manifest["feature_shape"]} in {manifest["dtype"]}: '
              f'{sample_bytes / 2 ** 20:.2f} MiB each, {total / 2 ** 30:.2f} GiB in {manifest["num_shards"]} shards '
              f'of {manifest["shard_size"]}, to {out_dir}', logger='current')
    if (out_dir / MANIFEST).is_file():
        old = read_manifest(out_dir, complete=False)
        changed = sorted(key for key in manifest if key != 'written' and old.get(key) != manifest[key])
        if changed:
            raise ValueError(f'{out_dir} holds a feature cache written with other arguments ({", ".join(changed)}); '
                             f'choose another --out, or delete it to rewrite it')
        if old.get('complete'):
            print_log(f'{out_dir}: already complete', logger='current')
        manifest['written'] = old.get('written', 0)
    out_dir.mkdir(parents=True, exist_ok=True)
    for leftover in out_dir.glob('*.tmp'):  # a shard being written when the last run was killed
        leftover.unlink()
    free = shutil.disk_usage(out_dir).free
    missing = sum(not shard_path(out_dir, n).is_file() for n in range(manifest['num_shards']))
    needed = sample_bytes * min(missing * manifest['shard_size'], manifest['num_samples'])
    if needed > free:
        raise ValueError(f'{out_dir}: the cache needs {needed / 2 ** 30:.2f} GiB more, the disk has '
                         f'{free / 2 ** 30:.2f} GiB free')
    _write_manifest(out_dir, manifest)


def _write_manifest(out_dir: Path, manifest: dict) -> None:
    temporary = out_dir / (MANIFEST + '.tmp')
    temporary.write_text(json.dumps(manifest, indent=1))
    os.replace(temporary, out_dir / MANIFEST)
