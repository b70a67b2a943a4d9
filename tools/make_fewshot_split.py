"""Write the deterministic few-shot training lists (1/2, 1/4, 1/8, 1/16) used by the few-shot configs.

    python tools/make_fewshot_split.py [--data-root data/ade/ADEChallengeData2016] [--seed 0]
"""
import argparse
import sys

from mmseg_custom.datasets.fewshot import write_fewshot_splits


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data-root', default='data/ade/ADEChallengeData2016')
    parser.add_argument('--img-dir', default='images/training')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    try:
        written = write_fewshot_splits(args.data_root, args.img_dir, seed=args.seed)
    except FileNotFoundError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    for k, path in written.items():
        print(f'1/{k}: {path} ({sum(1 for _ in open(path))} images)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
