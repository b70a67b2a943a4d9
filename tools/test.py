"""Evaluate a segmentor (mmseg conventions): python tools/test.py CONFIG CHECKPOINT [--work-dir DIR]
[--show-dir DIR] [--out DIR] [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi] [--cpu] [--non-strict]

The checkpoint must hold exactly the config's model (missing, unexpected or mis-shaped weights are an
error listing them); --non-strict loads it the way mmengine does, with a warning."""
import argparse
import os
import sys

import mmengine_custom  # noqa: F401  (compatibility workarounds before any runner is built)
from internvl.checkpoint import CheckpointError
from mmengine_custom.runner import (add_common_arguments, build_runner, check_data_roots, load_config, parse_tool_args,
                                   verify_checkpoint)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a segmentor')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='the dir to save the predicted label maps (PNG)')
    parser.add_argument('--show-dir', help='the dir to save painted predictions beside the ground truth')
    parser.add_argument('--non-strict', action='store_true',
                        help="load the checkpoint as mmengine does: missing / unexpected weights only warned about")
    add_common_arguments(parser)
    return parse_tool_args(parser)


def main() -> int:
    args = parse_args()
    if not os.path.isfile(args.checkpoint):
        print(f'error: checkpoint not found: {args.checkpoint}', file=sys.stderr)
        return 1
    try:
        cfg = load_config(args.config, args.work_dir, args.cfg_options, args.launcher, args.cpu)
        check_data_roots(cfg, ('test_dataloader',))
        if not args.non_strict:
            verify_checkpoint(cfg, args.checkpoint)
    except (FileNotFoundError, CheckpointError) as e:  # a missing config or data folder, a wrong checkpoint
        print(f'error: {e}', file=sys.stderr)
        return 1
    cfg.load_from = args.checkpoint
    if args.show_dir:
        hook = cfg.default_hooks.visualization
        hook.draw = True
        cfg.visualizer.save_dir = args.show_dir
        hook.interval = 1
    if args.out:
        cfg.test_evaluator = dict(cfg.test_evaluator, output_dir=args.out, keep_results=True)
    try:
        metrics = build_runner(cfg).test()
    except CheckpointError as e:  # --non-strict, or a backbone's own pretrained file
        print(f'error: {e}', file=sys.stderr)
        return 1
    print('metrics: ' + ', '.join(f'{k}: {v}' for k, v in metrics.items()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
