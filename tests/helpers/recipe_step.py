"""One training step and one validation step of each given config, shrunk to the CPU, in one process
(for tests/openmmlab/test_precision.py and tests/det/test_det_training.py):

    python tests/helpers/recipe_step.py DATA_ROOT WORK_ROOT CONFIG[::key=value;...] ...

DATA_ROOT holds the synthetic ADE20K-layout data in ade/ and the COCO-layout data in coco/. The recipe
stays what it is (strategy, precision, frozen or trained backbone, layer decay, heads, with_cp, window
attention, adapter interactions, depth and taps), only smaller: InternViT of width 32 at the recipe's
depth, heads of 16 channels, crops of 56 (64 for the adapter) of the synthetic data, BatchNorm for
SyncBN (which needs a GPU), gloo for DeepSpeed's process group. The precision is the recipe's own:
DeepSpeed casts parameters, buffers and inputs exactly as on a GPU - its CPU
accelerator is told that fp16 is supported, since torch runs fp16 on any CPU and DeepSpeed refuses it
there only because oneDNN lacks fp16 kernels - and the adapter picks its deformable attention's dtype
as it would on a GPU.

Prints, after the training step, ``STEP <name> loss=<value> backbone_changed=<bool> dtype=<features
dtype>`` and, after the validation step, ``DTYPES <name> <op>=<dtype>,<dtype> ...``: the dtypes that
the ViT's attention computed in and that reached each mmcv kernel whose CUDA twin takes other dtypes than its CPU one
(``nms``, ``roi_align``, ``deform_attn``: the value tensor), in training and validation together."""
import importlib
import sys
import tempfile
from contextlib import nullcontext
from pathlib import Path

import torch

import internvl_mmlab  # noqa: F401
from internvl.models import resolve_arch
from mmengine.config import Config, DictAction
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from internvl_mmlab.cli import build_runner

WIDTH, CHANNELS, CROP, ADAPTER_CROP = 32, 16, 56, 64
MAX_SKIPPED_STEPS = 20  # fp16's loss scale starts at 2**16 and halves on overflow (after DeepSpeed's hysteresis of 2)
NORM = dict(type='BN', requires_grad=True)


def deepspeed_fp16_on_cpu() -> None:
    """Let DeepSpeed's CPU accelerator accept fp16, so its engine casts a model as on a GPU."""
    from deepspeed.accelerator.cpu_accelerator import CPU_Accelerator
    CPU_Accelerator.is_fp16_supported = lambda self: True
    supported = CPU_Accelerator.supported_dtypes
    CPU_Accelerator.supported_dtypes = lambda self: sorted({*supported(self), torch.float16}, key=str)


SEEN: dict[str, set] = {}


def record(name: str, fn):
    """``fn`` that notes the dtype of its first tensor argument under ``name``."""
    def wrapped(*args, **kwargs):
        tensor = next(a for a in args if isinstance(a, torch.Tensor))
        SEEN.setdefault(name, set()).add(str(tensor.dtype).removeprefix('torch.'))
        return fn(*args, **kwargs)
    return wrapped


def cuda_dtype_decisions() -> None:
    """Make the adapter choose its deformable attention's dtype as it does on a GPU (bf16 upcast to
    fp32), so that what reaches the CPU op is what would reach the CUDA one."""
    from internvl_mmlab.models import vit_adapter
    from internvl_mmlab.precision import deform_attn_dtype
    vit_adapter.deform_attn_dtype = lambda dtype, device: deform_attn_dtype(dtype, torch.device('cuda'))


def record_kernel_dtypes() -> None:
    """Note the dtypes reaching mmcv's nms, RoIAlign and deformable attention (value) on the CPU."""
    # the modules (``mmcv.ops.nms`` as an attribute is the function of that name)
    nms, roi_align, multi_scale_deform_attn = (importlib.import_module(f'mmcv.ops.{name}') for name in
                                               ('nms', 'roi_align', 'multi_scale_deform_attn'))
    nms.NMSop.forward = staticmethod(record('nms', nms.NMSop.forward))
    roi_align.RoIAlignFunction.forward = staticmethod(record('roi_align', roi_align.RoIAlignFunction.forward))
    multi_scale_deform_attn.multi_scale_deformable_attn_pytorch = record(
        'deform_attn', multi_scale_deform_attn.multi_scale_deformable_attn_pytorch)


def shrink_backbone(backbone: dict, crop: int) -> None:
    arch = resolve_arch(backbone.arch)
    backbone.arch = dict(arch, embed_dims=WIDTH, num_heads=2, img_size=crop - crop % arch['patch_size'])
    backbone.pretrained = None
    if backbone.get('img_size'):  # the recipes' position grid of the 504 crop: the shrunk crop's instead
        backbone.img_size = None
    if backbone.type == 'InternViTAdapter':
        backbone.update(deform_num_heads=2, conv_inplane=8)


def shrink_cpu_run(cfg: Config, work_dir: str) -> None:
    """Schedule of one applied step (up to MAX_SKIPPED_STEPS more that a loss scale skips) and one
    validation, no checkpoints; DeepSpeed on gloo."""
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=1 + MAX_SKIPPED_STEPS, val_interval=1)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint.update(interval=100, by_epoch=False, save_last=False, save_best=None)
    cfg.default_hooks.logger.interval = 1
    cfg.log_processor = dict(by_epoch=False)
    cfg.env_cfg.dist_cfg.backend = 'gloo'
    cfg.launcher = 'none'
    cfg.work_dir = work_dir


def shrink_det(cfg: Config, data: str, work_dir: str) -> Config:
    from mmdet_custom.datasets import CLASSES
    shrink_backbone(cfg.model.backbone, ADAPTER_CROP)
    model = cfg.model
    model.neck.update(in_channels=WIDTH if model.neck.type == 'SimpleFeaturePyramid' else [WIDTH] * 4,
                      out_channels=CHANNELS)
    model.rpn_head.update(in_channels=CHANNELS, feat_channels=CHANNELS)
    roi = model.roi_head
    roi.bbox_roi_extractor.out_channels = roi.mask_roi_extractor.out_channels = CHANNELS
    roi.bbox_head.update(in_channels=CHANNELS, fc_out_channels=32, num_classes=len(CLASSES))
    roi.mask_head.update(in_channels=CHANNELS, conv_out_channels=CHANNELS, num_classes=len(CLASSES))
    resize = dict(type='Resize', scale=(ADAPTER_CROP, ADAPTER_CROP), keep_ratio=True)
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
                resize, dict(type='PackDetInputs')]
    cfg.train_dataloader.update(batch_size=2, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.update(data_root=f'{data}/coco/', pipeline=pipeline, metainfo=dict(classes=CLASSES))
    test_pipeline = [dict(type='LoadImageFromFile'), resize,
                     dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
                     dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                                           'scale_factor'))]
    cfg.val_dataloader.update(batch_size=2, num_workers=0, persistent_workers=False)
    cfg.val_dataloader.dataset.update(data_root=f'{data}/coco/', pipeline=test_pipeline, metainfo=dict(classes=CLASSES))
    cfg.val_evaluator.ann_file = f'{data}/coco/annotations/instances_val2017.json'
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
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
    ade = dict(type='ADE20KDataset', data_root=data)  # any dataset's recipe (COCO-Stuff too) on the synthetic ADE20K
    cfg.train_dataloader.dataset.update(ade, pipeline=pipeline, ann_file='',
                                        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'))
    test_pipeline = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(2 * crop, crop), keep_ratio=True),
                     dict(type='LoadAnnotations', reduce_zero_label=True), dict(type='PackSegInputs')]
    cfg.val_dataloader.update(num_workers=0, persistent_workers=False)
    cfg.val_dataloader.dataset.update(ade, pipeline=test_pipeline, data_prefix=dict(
        img_path='images/validation', seg_map_path='annotations/validation'))
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    shrink_cpu_run(cfg, work_dir)
    return cfg


def deepspeed_engine(runner):
    """The DeepSpeed engine a FlexibleRunner trains through, or None."""
    import deepspeed
    engine = getattr(runner.model, 'model', None)
    return engine if isinstance(engine, deepspeed.DeepSpeedEngine) else None


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
        SEEN.clear()
        self.skipped = 0
        model.backbone.register_forward_hook(lambda module, args, out: self.dtypes.append(out[0].dtype))
        for block in self.vit.blocks:
            block.attn.register_forward_hook(record('vit', lambda module, args, out: None))  # its matmuls' dtype

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """Report the first step that was applied: under fp16's dynamic loss scale, a step whose
        gradients overflowed is skipped (up to MAX_SKIPPED_STEPS of them), as on a GPU."""
        engine = deepspeed_engine(runner)
        skipped = getattr(engine, 'skipped_steps', 0)
        if skipped > self.skipped:
            self.skipped = skipped
            return
        loss = runner.message_hub.get_scalar('train/loss').current()
        after = self.weights()
        changed = any(not torch.equal(self.before[k], v) for k, v in after.items())
        assert torch.isfinite(torch.tensor(loss)), loss
        scale = engine.optimizer.loss_scale if engine is not None and engine.fp16_enabled() else None
        print(f'STEP {runner.cfg.get("step_name")} loss={loss:.4f} backbone_changed={changed} '
              f'dtype={self.dtypes[0]} loss_scale={scale} skipped={skipped}', flush=True)
        runner.train_loop.stop_training = True

    def after_val_epoch(self, runner, metrics=None) -> None:
        seen = ' '.join(f'{op}={",".join(sorted(dtypes))}' for op, dtypes in sorted(SEEN.items()))
        print(f'DTYPES {runner.cfg.get("step_name")} {seen}', flush=True)


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
    deepspeed_fp16_on_cpu()
    cuda_dtype_decisions()
    record_kernel_dtypes()
    data, work_root, *specs = sys.argv[1:]
    for spec in specs:
        step(spec, data, work_root)
