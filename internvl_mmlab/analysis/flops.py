"""Parameters and FLOPs of a segmentation or detection config, for ``tools/analysis/get_flops.py``.

The model is built on the meta device and given storage that is never written
(``internvl.analysis.flops.without_weights``): a 6B recipe is counted in the memory of its activations,
in fp32 whatever ``backbone_dtype`` says (the count does not depend on it; bf16 is slow on the CPU).
The whole model is traced once on a zero image (the data preprocessor left out, as in mmseg's and
mmdet's own tools), one InternViT block per kind standing for its repeats
(``internvl.analysis.flops.block_per_kind_analysis``: exact, and a 6B recipe counts in seconds, not
minutes); ``module`` selects one submodule's share of that trace. Detectors are traced with
one data sample carrying the image's metainfo (``mmdet_custom.analysis.detection_samples``, passed in
by the tool); their RoI-head FLOPs follow the number of proposals, which meaningless weights do not
fix: count ``backbone`` (or ``neck``) for figures that compare. The model's classes come from the
modules the config imports (``custom_imports``, imported by ``Config.fromfile``).
"""
from dataclasses import dataclass
from typing import Optional

import torch
from fvcore.nn import flop_count_table
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from torch import nn

from internvl.analysis.flops import block_per_kind_analysis, parameter_counts, without_weights

from ..cli import config_task


@dataclass
class FlopReport:
    flops: int
    trainable: int
    frozen: int
    table: str
    note: str = ''


def build_without_weights(cfg: Config) -> tuple[nn.Module, list[bool], str]:
    """(model with unwritten storage, each parameter's ``requires_grad`` as the config built it, task)."""
    task = config_task(cfg)
    if 'backbone_dtype' in cfg.model.get('backbone', {}):  # FLOPs do not depend on it; fp32 runs fastest here
        cfg.model.backbone.backbone_dtype = 'float32'
    with torch.device('meta'), DefaultScope.overwrite_default_scope(task):  # the caller's scope is left as it was
        model = MODELS.build(cfg.model)
    trainable = [p.requires_grad for p in model.parameters()]
    return without_weights(model), trainable, task


def config_shape(cfg: Config) -> tuple[int, int]:
    """The input (H, W) a config trains on: its ``crop_size`` (segmentation), else the training
    pipeline's resize scale (detection: mmdet writes it (W, H)), else 512 x 512."""
    crop = cfg.get('crop_size') or cfg.model.get('data_preprocessor', {}).get('size')
    if crop:
        return tuple(crop)
    pipeline = cfg.get('train_dataloader', {}).get('dataset', {}).get('pipeline', [])
    for step in pipeline:
        if step.get('type') in ('Resize', 'RandomResize') and isinstance(step.get('scale'), (tuple, list)):
            width, height = step['scale']
            return height, width
    return 512, 512


def count_config(cfg: Config, shape: tuple[int, int], module: Optional[str] = None, depth: int = 3,
                 data_samples: Optional[list] = None) -> FlopReport:
    """FLOPs (fvcore's convention) and parameters of ``cfg.model`` on one ``shape`` image, or of its
    submodule ``module``; with a per-module table ``depth`` levels deep. ``data_samples``: what the
    model's tensor forward takes beside the image (a detector's: ``detection_samples``)."""
    model, trainable, task = build_without_weights(cfg)
    names = dict(model.named_modules())
    if module is not None and module not in names:
        top = sorted(n for n in names if n and '.' not in n)
        raise ValueError(f'--module {module!r}: the model has no such submodule; top-level ones: {top}')
    # fvcore traces ``model(inputs)``: the tensor forward (``_forward``), with the model's own module names
    model.forward = lambda inputs: model._forward(inputs, data_samples)
    with DefaultScope.overwrite_default_scope(task):
        analysis = block_per_kind_analysis(model, (torch.zeros(1, 3, *shape),))
    target = names[module or '']
    flags = trainable
    if module:
        inside = {id(p) for p in target.parameters()}
        flags = [flag for p, flag in zip(model.parameters(), trainable) if id(p) in inside]
    on, off = parameter_counts(target, flags)
    table = flop_count_table(analysis, max_depth=depth + (module.count('.') + 1 if module else 0),
                             show_param_shapes=False)
    if module:  # the module's rows (and the table's header)
        table = '\n'.join(line for i, line in enumerate(table.splitlines())
                          if i < 2 or line.lstrip('| ').split(' ')[0].startswith(module))
    note = ''
    if task == 'mmdet' and not module:
        note = ("Note: a detector's RoI head is counted on the proposals that weights never loaded give "
                f"(its FLOPs here: {analysis.by_module().get('roi_head', 0) / 1e9:.3f} G); compare models "
                'with --module backbone')
    return FlopReport(flops=analysis.by_module()[module or ''], trainable=on, frozen=off, table=table, note=note)


def format_report(report: FlopReport, shape: tuple[int, int], module: Optional[str]) -> str:
    what = f'{module} of the model' if module else 'the model'
    total = report.trainable + report.frozen
    return '\n'.join([
        report.table, '', *([report.note] if report.note else []),
        f'Input: 1 x 3 x {shape[0]} x {shape[1]}; counted: {what}; 1 FLOP = 1 fused multiply-add (fvcore), '
        f'attention included',
        f'Params: {total / 1e6:.2f} M (trainable {report.trainable / 1e6:.2f} M, frozen {report.frozen / 1e6:.2f} M)',
        f'FLOPs: {report.flops / 1e9:.3f} G'])
