"""One training step of each given config, shrunk to the CPU, in one process (for tests/test_precision.py):

    python tests/recipe_step.py DATA_ROOT WORK_ROOT CONFIG[::key=value;...] ...

The recipe stays what it is (strategy, precision, frozen or trained backbone, layer decay, heads,
with_cp, depth and taps), only smaller: InternViT of width 32 at the recipe's depth, heads of 16
channels, crop 56 of the synthetic data, BatchNorm for SyncBN (which needs a GPU), gloo for DeepSpeed's
process group. Prints ``STEP <name> loss=<value> backbone_changed=<bool> dtype=<features dtype>``."""
import sys
import tempfile
from contextlib import nullcontext
from pathlib import Path

import torch

import mmengine_custom  # noqa: F401
from internvl.models import resolve_arch
from mmengine.config import Config, DictAction
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine_custom.runner import build_runner

WIDTH, CHANNELS, CROP = 32, 16, 56


def shrink(cfg: Config, data: str, work_dir: str) -> Config:
    backbone = cfg.model.backbone
    arch = resolve_arch(backbone.arch)
    backbone.arch = dict(arch, embed_dims=WIDTH, num_heads=2, img_size=CROP)
    backbone.pretrained = None
    norm = dict(type='BN', requires_grad=True)
    head = cfg.model.decode_head
    head.update(in_channels=[WIDTH] * 4 if backbone.get('with_fpn') else WIDTH, norm_cfg=norm)
    if 'channels' in head and head.type != 'LinearProbeHead':
        head.channels = CHANNELS
    if cfg.model.get('auxiliary_head'):
        cfg.model.auxiliary_head.update(in_channels=WIDTH, channels=CHANNELS, norm_cfg=norm)
    cfg.model.data_preprocessor.size = (CROP, CROP)
    cfg.model.test_cfg.update(crop_size=(CROP, CROP), stride=(42, 42))
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', reduce_zero_label=True),
                dict(type='RandomCrop', crop_size=(CROP, CROP)), dict(type='PackSegInputs')]
    cfg.train_dataloader.update(batch_size=2, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.update(data_root=data, pipeline=pipeline, ann_file='')
    for loader in ('val_dataloader', 'test_dataloader'):
        cfg[loader].update(num_workers=0, persistent_workers=False)
        cfg[loader].dataset.data_root = data
    cfg.train_cfg.update(max_iters=1, val_interval=100)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint.update(interval=100, save_last=False, save_best=None)
    cfg.default_hooks.logger.interval = 1
    cfg.env_cfg.dist_cfg.backend = 'gloo'
    cfg.launcher = 'none'
    cfg.work_dir = work_dir
    return cfg


@HOOKS.register_module()
class RecipeStepProbe(Hook):
    """Records the dtype of the backbone's features, whether the ViT's weights moved, and the loss."""

    def weights(self) -> dict:
        """The ViT's weights, gathered first under ZeRO-3 (each rank holds a partition of them)."""
        params = list(self.vit.parameters())
        gather = nullcontext()
        if hasattr(params[0], 'ds_id'):
            import deepspeed
            gather = deepspeed.zero.GatheredParameters(params)
        with gather:
            return {k: v.detach().float().clone() for k, v in self.vit.named_parameters()}

    def before_train(self, runner) -> None:
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        self.vit = model.backbone.vit
        self.before = self.weights()
        self.dtypes = []
        model.backbone.register_forward_hook(lambda module, args, out: self.dtypes.append(out[0].dtype))

    def after_train(self, runner) -> None:
        loss = runner.message_hub.get_scalar('train/loss').current()
        after = self.weights()
        changed = any(not torch.equal(self.before[k], v) for k, v in after.items())
        assert torch.isfinite(torch.tensor(loss)), loss
        print(f'STEP {runner.cfg.get("step_name")} loss={loss:.4f} backbone_changed={changed} '
              f'dtype={self.dtypes[0]}', flush=True)


def step(spec: str, data: str, work_root: str) -> None:
    path, _, options = spec.partition('::')
    cfg = Config.fromfile(path)
    if options:
        pairs = (option.split('=', 1) for option in options.split(';'))
        cfg.merge_from_dict({k: DictAction._parse_iterable(v) for k, v in pairs})
    cfg.step_name = Path(path).stem + (f'::{options}' if options else '')
    cfg = shrink(cfg, data, tempfile.mkdtemp(dir=work_root))
    cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [dict(type='RecipeStepProbe')]
    build_runner(cfg).train()


if __name__ == '__main__':
    data, work_root, *specs = sys.argv[1:]
    for spec in specs:
        step(spec, data, work_root)
