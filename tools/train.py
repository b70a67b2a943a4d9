"""Train a segmentor or a detector (mmseg / mmdet conventions, chosen by the config's default_scope):
python tools/train.py CONFIG [--work-dir DIR] [--resume] [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]
[--cpu] [--feature-cache DIR]"""
import argparse
import sys

import torch

import internvl_mmlab  # noqa: F401  (the engine and the workarounds, before any runner is built)
from internvl.checkpoint import CheckpointError
from internvl_mmlab.cli import (add_common_arguments, apply_amp, build_model_on_meta, build_runner, check_data_roots,
                                config_task, load_config, parse_tool_args)
from internvl_mmlab.engine.checkpoint import resumable_checkpoint
from internvl_mmlab.errors import BadDataError, NonFiniteLossError, NothingToResumeError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a segmentor or a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--resume', action='store_true', help='resume from the latest checkpoint in the work_dir')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision (PortableAmpOptimWrapper): fp16 for detection and bf16 for segmentation on '
                             'GPUs, bf16 on the CPU; not with a DeepSpeed recipe (its strategy sets the precision)')
    parser.add_argument('--feature-cache', metavar='DIR',
                        help='a probe sweep trained and validated from the maps tools/cache_features.py wrote to DIR')
    add_common_arguments(parser)
    return parse_tool_args(parser)


def main() -> int:
    args = parse_args()
    try:
        cfg = load_config(args.config, args.work_dir, args.cfg_options, args.launcher, args.cpu)
        config_task(cfg)
        if args.amp:
            apply_amp(cfg, cuda=torch.cuda.is_available() and not args.cpu)
        if args.feature_cache:
            from mmseg_custom.probing import use_feature_cache
            use_feature_cache(cfg, args.feature_cache)
        check_data_roots(cfg, ('train_dataloader', 'val_dataloader'))
        build_model_on_meta(cfg)  # a bad model argument (an unknown preset, ...) is one line, before anything heavy
        cfg.resume = args.resume
        if args.resume:  # the newest complete checkpoint; a truncated or corrupt one is named and skipped
            found = resumable_checkpoint(cfg.work_dir)
            if found:  # none at all: a fresh start, from the config's own load_from if it has one
                cfg.load_from = found
    except (FileNotFoundError, ValueError, NothingToResumeError) as e:  # a missing config or dataset
        print(f'error: {e}', file=sys.stderr)                          # (DataRootError), an unknown scope
        return 1
    try:
        build_runner(cfg).train()
    except (CheckpointError, NonFiniteLossError, BadDataError) as e:  # a refused checkpoint; a NaN loss; bad data
        print(f'error: {e}', file=sys.stderr)
        return 1
    except (AssertionError, FileNotFoundError) as e:  # mmcv's image loader, also from a loader worker
        line = str(e).strip().splitlines()[-1]
        if 'failed to load image' not in line and not isinstance(e, FileNotFoundError):
            raise
        print(f'error: {line.removeprefix("AssertionError: ")} (unreadable or truncated; '
              f'tools/check_dataset.py lists every such file)', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
