"""Run a probe sweep's frozen backbone once over its data and store the tapped maps, so probes train from
them with no backbone in memory (``tools/train.py CONFIG --feature-cache OUT``):

python tools/cache_features.py CONFIG --out DIR [--splits train val] [--blocks 0 4 ...] [--dtype float16]
    [--flip] [--shard-size 64] [--batch-size 4] [--num-workers 2] [--device cpu|cuda] [--cfg-options k=v ...]

Writes DIR/train and DIR/val (mmseg_custom/probing/feature_cache.py: the layout); prints the size before
writing anything; a killed run, rerun with the same arguments, writes only the shards it lacks."""
import argparse
import sys

import torch
from mmengine.config import DictAction

import internvl_mmlab  # noqa: F401
from internvl_mmlab.cli import check_data_roots, load_config
from internvl_mmlab.errors import BadDataError
from internvl_mmlab.precision import DTYPES


def main() -> int:
    parser = argparse.ArgumentParser(description='Cache a frozen backbone\'s maps for probe training')
    parser.add_argument('config', help='a probe sweep config (decode_head ProbeSweepHead)')
    parser.add_argument('--out', required=True, help='the cache folder (one sub-folder per split)')
    parser.add_argument('--splits', nargs='+', default=['train', 'val'], choices=['train', 'val'])
    parser.add_argument('--blocks', nargs='+', type=int, help='blocks to store (default: those the probes read)')
    parser.add_argument('--dtype', default='float16', choices=list(DTYPES))
    parser.add_argument('--flip', action='store_true', help='also store the horizontally flipped view')
    parser.add_argument('--shard-size', type=int, default=64, help='samples per safetensors shard')
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--num-workers', type=int, default=2)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override settings of the config')
    args = parser.parse_args()
    try:
        cfg = load_config(args.config, cfg_options=args.cfg_options)
        check_data_roots(cfg, tuple(f'{split}_dataloader' for split in args.splits))
        import mmseg_custom  # noqa: F401  (the registries, after the config has been read)
        from mmseg_custom.probing import write_feature_cache
        for split in args.splits:
            out = write_feature_cache(cfg, args.config, f'{args.out}/{split}', split=split, blocks=args.blocks,
                                      dtype=args.dtype, flip=args.flip, shard_size=args.shard_size,
                                      batch_size=args.batch_size, num_workers=args.num_workers, device=args.device)
            print(f'{split}: {out}')
    except (FileNotFoundError, ValueError, BadDataError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
