"""One training step of each given config, shrunk to the CPU, in one process (for tests/test_precision.py
and tests/test_det_training.py):

    python tests/recipe_step.py DATA_ROOT WORK_ROOT CONFIG[::key=value;...] ...

DATA_ROOT holds the synthetic ADE20K-layout data in ade/ and the COCO-layout data in coco/. The recipe
stays what it is (strategy, precision, frozen or trained backbone, layer decay, heads, with_cp, window
attention, adapter interactions, depth and taps), only smaller: InternViT of width 32 at the recipe's
depth, heads of 16 channels, crops of 56 (64 for the adapter) of the synthetic data, BatchNorm for
SyncBN (which needs a GPU), gloo for DeepSpeed's process group; fp16, which DeepSpeed refuses on the
CPU, becomes fp32 DeepSpeed with a bf16 backbone (mmcv's CPU RoIAlign takes fp32 only).
Prints ``STEP <name> loss=<value> backbone_changed=<bool> dtype=<features dtype>``."""
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

WIDTH, CHANNELS, CROP, ADAPTER_CROP = 32, 16, 56, 64
NORM = dict(type='BN', requires_grad=True)


def shrink_backbone(backbone: dict, crop: int) -> None:
    arch = resolve_arch(backbone.arch)
    backbone.arch = dict(arch, embed_dims=WIDTH, num_heads=2, img_size=crop - crop % arch['patch_size'])
    backbone.pretrained = None
    if backbone.type == 'InternViTAdapter':
        backbone.update(deform_num_heads=2, conv_inplane=8, norm_cfg=NORM)


def shrink_cpu_run(cfg: Config, work_dir: str) -> None:
    """Schedule of one iteration, no checkpoints; DeepSpeed on gloo, fp16 (GPUs only) as fp32 + bf16 backbone."""
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=1, val_interval=100)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint.update(interval=100, by_epoch=False, save_last=False, save_best=None)
    cfg.default_hooks.logger.interval = 1
    cfg.log_processor = dict(by_epoch=False)
    cfg.env_cfg.dist_cfg.backend = 'gloo'
    if cfg.get('strategy', {}).get('fp16'):
        cfg.strategy.pop('fp16')
        cfg.strategy.pop('inputs_to_half', None)
        if cfg.model.backbone.get('backbone_dtype') == 'float16':
            cfg.model.backbone.backbone_dtype = 'bfloat16'
    cfg.launcher = 'none'
    cfg.work_dir = work_dir


def shrink_det(cfg: Config, data: str, work_dir: str) -> Config:
    from mmdet_custom.datasets import CLASSES
    shrink_backbone(cfg.model.backbone, ADAPTER_CROP)
    model = cfg.model
    model.neck.update(in_channels=[WIDTH] * 4, out_channels=CHANNELS)
    model.rpn_head.update(in_channels=CHANNELS, feat_channels=CHANNELS)
    roi = model.roi_head
    roi.bbox_roi_extractor.out_channels = roi.mask_roi_extractor.out_channels = CHANNELS
    roi.bbox_head.update(in_channels=CHANNELS, fc_out_channels=32, num_classes=len(CLASSES))
    roi.mask_head.update(in_channels=CHANNELS, conv_out_channels=CHANNELS, num_classes=len(CLASSES))
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
                dict(type='Resize', scale=(ADAPTER_CROP, ADAPTER_CROP), keep_ratio=True), dict(type='PackDetInputs')]
    cfg.train_dataloader.update(batch_size=2, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.update(data_root=f'{data}/coco/', pipeline=pipeline, metainfo=dict(classes=CLASSES))
    cfg.val_dataloader = cfg.test_dataloader = cfg.val_cfg = cfg.test_cfg = cfg.val_evaluator = cfg.test_evaluator = None
    shrink_cpu_run(cfg, work_dir)
    return cfg


def shrink(cfg: Config, data: str, work_dir: str) -> Config:
    if cfg.default_scope == 'mmdet':
        return shrink_det(cfg, data, work_dir)
    backbone = cfg.model.backbone
    crop = ADAPTER_CROP if backbone.type == 'InternViTAdapter' else CROP
    shrink_backbone(backbone, crop)
    data = f'{data}/ade'
    norm = NORM
    head = cfg.model.decode_head
    pyramid = backbone.get('with_fpn') or backbone.type == 'InternViTAdapter'
    head.update(in_channels=[WIDTH] * 4 if pyramid else WIDTH, norm_cfg=norm)
    if 'channels' in head and head.type != 'LinearProbeHead':
        head.channels = CHANNELS
    if cfg.model.get('auxiliary_head'):
        cfg.model.auxiliary_head.update(in_channels=WIDTH, channels=CHANNELS, norm_cfg=norm)
    cfg.model.data_preprocessor.size = (crop, crop)
    cfg.model.test_cfg.update(crop_size=(crop, crop), stride=(42, 42))
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', reduce_zero_label=True),
                dict(type='RandomCrop', crop_size=(crop, crop)), dict(type='PackSegInputs')]
    cfg.train_dataloader.update(batch_size=2, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.update(data_root=data, pipeline=pipeline, ann_file='')
    for loader in ('val_dataloader', 'test_dataloader'):
        cfg[loader].update(num_workers=0, persistent_workers=False)
        cfg[loader].dataset.data_root = data
    shrink_cpu_run(cfg, work_dir)
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
