"""Write the embedded synthetic dataset in the ADE20K layout (see mmseg_custom/datasets/synthetic_ade.py).

    python tools/make_synthetic_ade.py [--out data/synthetic_ade --num-train 200 --num-val 40 --size 112]
"""
import argparse

from mmseg_custom.datasets.synthetic_ade import write_synthetic_ade


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='data/synthetic_ade')
    parser.add_argument('--num-train', type=int, default=200)
    parser.add_argument('--num-val', type=int, default=40)
    parser.add_argument('--size', type=int, default=112)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    root = write_synthetic_ade(args.out, args.num_train, args.num_val, args.size, args.seed)
    print(f'synthetic ADE20K-layout data in {root}')


if __name__ == '__main__':
    main()
