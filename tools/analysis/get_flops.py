"""Parameters (trainable and frozen apart) and FLOPs of a segmentation or detection config, counted by
fvcore with attention (scaled_dot_product_attention) included, without the weights in memory.

    python tools/analysis/get_flops.py CONFIG [--shape H W] [--module backbone] [--depth 3]
        [--cfg-options model.backbone.arch=internvit-6b-448px]

1 FLOP = 1 fused multiply-add (fvcore's convention). --module restricts the count to one submodule
(e.g. backbone); --depth sets how deep the per-module table goes. --shape defaults to the config's
crop (segmentation) or training resize scale (detection).
"""
import argparse
import sys

from mmengine.config import DictAction

from internvl_mmlab.analysis.flops import config_shape, count_config, format_report
from internvl_mmlab.cli import config_task, load_config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('--shape', type=int, nargs='+', help="input H W (or one side); default: the config's crop")
    parser.add_argument('--module', help='count this submodule only, e.g. backbone')
    parser.add_argument('--depth', type=int, default=3, help='levels of the per-module table')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override settings of the config')
    args = parser.parse_args()
    if args.shape is not None and len(args.shape) not in (1, 2):
        parser.error('--shape takes H W or one side')
    try:
        cfg = load_config(args.config, cfg_options=args.cfg_options)
        shape = (args.shape[0], args.shape[-1]) if args.shape else config_shape(cfg)
        print(f'counting on one 1 x 3 x {shape[0]} x {shape[1]} image (one InternViT block per kind traced) ...',
              file=sys.stderr, flush=True)
        samples = None
        if config_task(cfg) == 'mmdet':
            from mmdet_custom.analysis import detection_samples
            samples = detection_samples(shape)
        report = count_config(cfg, shape, args.module, args.depth, samples)
    except (FileNotFoundError, ValueError, KeyError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(format_report(report, shape, args.module))
    return 0


if __name__ == '__main__':
    sys.exit(main())
