"""Evaluate a segmentor or a detector (mmseg / mmdet conventions, chosen by the config's default_scope):
python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--show-dir DIR] [--out PATH] [--cfg-options k=v ...]
[--launcher none|pytorch|slurm|mpi] [--cpu] [--non-strict] [--tta] [--per-class-csv PATH]

CHECKPOINT is a checkpoint file or a DeepSpeed checkpoint directory (``iter_N.pth/``, ``epoch_N.pth/``:
released in memory, nothing written). It must hold exactly the config's model (missing, unexpected or
mis-shaped weights are an error listing them); --non-strict loads it the way mmengine does, with a
warning. OpenGVLab's released segmentors (bare mmseg 0.x state dicts) are mapped onto the config's model
(``mmseg_custom.released``), the layout found logged; one without its frozen ViT takes it from
``model.backbone.pretrained``. Segmentation prints mmseg's per-class table and writes it as CSV
(``WORK_DIR/per_class_iou.csv`` unless --per-class-csv); --tta tests with the config's multi-scale +
flip ``tta_pipeline`` and ``tta_model``. Evaluation runs on the plain runner (the configs'
CrashSafeRunner), a DeepSpeed recipe's strategy left to training."""
import argparse
import os
import sys

import internvl_mmlab  # noqa: F401  (the engine and the workarounds, before any runner is built)
from internvl.checkpoint import CheckpointError
from internvl_mmlab.cli import (add_common_arguments, apply_tta, build_runner, check_data_roots, checkpoint_exists,
                                config_task, for_evaluation, load_config, load_pretrained_backbone, parse_tool_args,
                                verify_checkpoint)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a segmentor or a detector')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file, or a DeepSpeed checkpoint directory')
    parser.add_argument('--out', help='segmentation: the dir to save the predicted label maps (PNG); '
                                      'detection: the .pkl file to dump the predictions to')
    parser.add_argument('--show-dir', help='the dir to save painted predictions (beside the ground truth)')
    parser.add_argument('--non-strict', action='store_true',
                        help="load the checkpoint as mmengine does: missing / unexpected weights only warned about")
    parser.add_argument('--tta', action='store_true',
                        help="test-time augmentation: the config's tta_pipeline (scales x flips) and tta_model")
    parser.add_argument('--per-class-csv', help='segmentation: where to write the per-class IoU / Acc table '
                                                '(default WORK_DIR/per_class_iou.csv)')
    add_common_arguments(parser)
    return parse_tool_args(parser)


def show_predictions(cfg, task: str, show_dir: str) -> None:
    hook = cfg.default_hooks.visualization
    hook.draw = True
    hook.interval = 1
    if task == 'mmdet':
        hook.test_out_dir = os.path.abspath(show_dir)
    else:
        cfg.visualizer.save_dir = show_dir


def save_predictions(cfg, task: str, out: str) -> None:
    if task == 'mmdet':
        if not out.endswith(('.pkl', '.pickle')):
            raise SystemExit(f'error: --out {out}: detection predictions are dumped to a .pkl file')
        evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [cfg.test_evaluator]
        cfg.test_evaluator = evaluators + [dict(type='DumpDetResults', out_file_path=out)]
    elif cfg.test_evaluator.get('type') == 'ProbeSweepIoUMetric':
        raise SystemExit(f'error: --out {out}: a probe sweep writes no label maps (it predicts one per probe)')
    else:
        cfg.test_evaluator = dict(cfg.test_evaluator, output_dir=out, keep_results=True)


def write_per_class_table(cfg, path: str) -> None:
    """Segmentation: mmseg's IoUMetric as ``PerClassIoUMetric``, which also writes its table to ``path``."""
    if cfg.test_evaluator.get('type') in ('IoUMetric', 'PerClassIoUMetric'):
        cfg.test_evaluator = dict(cfg.test_evaluator, type='PerClassIoUMetric', csv_file=path)


def main() -> int:
    args = parse_args()
    if not checkpoint_exists(args.checkpoint):
        print(f'error: checkpoint not found: {args.checkpoint} (a file, or a DeepSpeed checkpoint directory '
              f'with *model_states.pt in it)', file=sys.stderr)
        return 1
    try:
        cfg = for_evaluation(load_config(args.config, args.work_dir, args.cfg_options, args.launcher, args.cpu))
        task = config_task(cfg)
        check_data_roots(cfg, ('test_dataloader',))
        backbone_from_pretrained = not args.non_strict and verify_checkpoint(cfg, args.checkpoint)
        if args.tta:
            apply_tta(cfg)
    except (FileNotFoundError, CheckpointError, ValueError) as e:  # a missing config or data, a wrong checkpoint
        print(f'error: {e}', file=sys.stderr)
        return 1
    cfg.load_from = args.checkpoint
    if task == 'mmseg':
        write_per_class_table(cfg, args.per_class_csv or os.path.join(cfg.work_dir, 'per_class_iou.csv'))
    if args.show_dir:
        show_predictions(cfg, task, args.show_dir)
    if args.out:
        save_predictions(cfg, task, args.out)
    try:
        runner = build_runner(cfg, console_summary=False)
        if backbone_from_pretrained:
            load_pretrained_backbone(runner.model)
        metrics = runner.test()
    except CheckpointError as e:  # --non-strict, or a backbone's own pretrained file
        print(f'error: {e}', file=sys.stderr)
        return 1
    # six significant digits: mmseg's percentages come back as float32 (92.41 prints as 92.41000366210938)
    print('metrics: ' + ', '.join(f'{k}: {v:.6g}' if isinstance(v, float) else f'{k}: {v}' for k, v in metrics.items()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
