"""A tiny probing study for the probe-sweep and feature-cache tests: the demo sweep config on synthetic
ADE20K data with a 'pretrained' tiny InternViT written to a file, shrunk to a few iterations."""
import json
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / 'configs' / 'seg' / 'demo' / 'probe-sweep_internvit-tiny_1xb4-120it_synthetic-ade-112x112.py'
BLOCKS, LRS, ITERS, MAX_NORM = [1, 3], [1e-3, 4e-3], 4, 0.05


def make_study(root: Path) -> Path:
    """Synthetic ADE20K data (8 training, 2 validation images) and the ViT's weights, under ``root``."""
    from internvl import InternViT
    from mmseg_custom.datasets import write_synthetic_ade
    write_synthetic_ade(root / 'data', num_train=8, num_val=2, size=112)
    torch.manual_seed(0)
    vit = InternViT(dict(Config.fromfile(str(DEMO)).model.backbone.arch))
    torch.save(vit.state_dict(), root / 'vit.pth')
    return root


@pytest.fixture(scope='module')
def study(tmp_path_factory) -> Path:
    """The study's files, once per test module."""
    return make_study(tmp_path_factory.mktemp('probe_study'))


def tiny_cfg(study: Path, name: str, **options) -> Config:
    """The demo sweep on the study's data: BLOCKS x LRS x BN or not, ITERS iterations at batch 2, every
    probe's gradients clipped to MAX_NORM, the full-resolution logits recomputed in the backward pass
    (``checkpoint_loss``, as the 6B recipes set it), a validation at the end; work dir ``study/name``."""
    cfg = Config.fromfile(str(DEMO))
    cfg.merge_from_dict({
        'model.backbone.out_indices': BLOCKS, 'model.decode_head.blocks': BLOCKS, 'model.decode_head.lrs': LRS,
        'model.backbone.pretrained': str(study / 'vit.pth'), 'model.decode_head.checkpoint_loss': True, 'optim_wrapper.clip_grad': dict(max_norm=MAX_NORM),
        'train_cfg.max_iters': ITERS, 'train_cfg.val_interval': ITERS, 'default_hooks.logger.interval': 1,
        'default_hooks.checkpoint.interval': ITERS, 'train_dataloader.batch_size': 2,
        'work_dir': str(study / name), 'experiment_name': name, **options})
    cfg.visualizer.name = f'visualizer_{name}'  # mmengine's visualizer is a named singleton: one per run
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].update(num_workers=0, persistent_workers=False)
        cfg[loader].dataset.data_root = str(study / 'data')
    return cfg


def train(cfg: Config) -> torch.nn.Module:
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner.model


def last_record(work_dir: Path, key: str) -> dict:
    """The last record of the run's metrics file (scalars.json) that holds ``key``."""
    records = [json.loads(line) for path in work_dir.glob('*/vis_data/scalars.json')
               for line in path.read_text().splitlines()]
    return [r for r in records if key in r][-1]
