"""Write the embedded synthetic dataset in the COCO 2017 instance layout (see mmdet_custom/datasets/synthetic_coco.py).

    python tools/make_synthetic_coco.py [--out data/synthetic_coco --num-train 200 --num-val 50 --size 128]
"""
import argparse

from mmdet_custom.datasets import write_synthetic_coco


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='data/synthetic_coco')
    parser.add_argument('--num-train', type=int, default=200)
    parser.add_argument('--num-val', type=int, default=50)
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    root = write_synthetic_coco(args.out, args.num_train, args.num_val, args.size, args.seed)
    print(f'synthetic COCO-layout data in {root}')


if __name__ == '__main__':
    main()
