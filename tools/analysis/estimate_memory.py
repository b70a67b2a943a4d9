"""Plan GPU memory for training a config: per GPU, weights / gradients / optimizer states /
communication buckets / activations, for the config's own setting (its ZeRO stage, precision and
offload, or plain DDP), then for ZeRO stages 0-3 with and without optimizer CPU offload, and which fit.

    python tools/analysis/estimate_memory.py CONFIG --gpus 8 --gpu-mem 80 [--measure-size 252]
    python tools/analysis/estimate_memory.py --table configs/seg/internvit/*6b*.py   # the README's table

The model is built on the meta device for its parameter counts (no weights are read). Activations
are measured on 1- and 2-block copies of the model at --measure-size (a multiple of 28) and scaled to
the config's depth, crop and batch per GPU. A setting fits when it leaves 10% of the GPU free.
Segmentation configs only: a detection config is refused with a message.
"""
import argparse
import os
import sys

from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmseg_custom  # noqa: F401
from mmseg_custom.analysis.memory import GIB, TABLE_HEADER, Plan, plan_config, table_row


def row(label: str, plan: Plan) -> str:
    s = plan.states
    return (f'  {label:<24} | {s.params / GIB:7.1f} {s.grads / GIB:7.1f} {s.optimizer / GIB:7.1f} '
            f'{s.buckets / GIB:7.1f} {plan.activations / GIB:7.1f} | {plan.total / GIB:9.1f} {s.cpu / GIB:9.1f} | '
            f'{"yes" if plan.fits else "no"}')


def main() -> int:
    try:
        run()
    except ValueError as e:  # a detection config: not planned
        print(f'error: {e}', file=sys.stderr)
        return 1
    return 0


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('configs', nargs='+')
    parser.add_argument('--table', action='store_true', help="one markdown row per config (the README's table)")
    parser.add_argument('--gpus', type=int, default=8, help='GPUs in all')
    parser.add_argument('--gpus-per-node', type=int, default=8)
    parser.add_argument('--gpu-mem', type=float, default=80, help='memory of one GPU, GiB')
    parser.add_argument('--measure-size', type=int, default=252,
                        help='input side of the activation measurement, a multiple of 28')
    args = parser.parse_args()
    cache: dict = {}
    if args.table:
        print(TABLE_HEADER)
        for path in args.configs:
            cfg = Config.fromfile(path)
            init_default_scope(cfg.get('default_scope', 'mmseg'))
            plan = plan_config(cfg, args.gpus, args.gpu_mem, args.gpus_per_node, args.measure_size,
                               activation_cache=cache)
            print(table_row(os.path.basename(path), plan))
        return
    if len(args.configs) != 1:
        parser.error('one config, or --table')
    cfg = Config.fromfile(args.configs[0])
    init_default_scope(cfg.get('default_scope', 'mmseg'))

    def plan(**kwargs) -> Plan:
        return plan_config(cfg, args.gpus, args.gpu_mem, args.gpus_per_node, args.measure_size,
                           activation_cache=cache, **kwargs)

    own = plan()
    print(f'{args.configs[0]}\n  {args.gpus} GPUs of {args.gpu_mem:g} GiB; precision {own.precision.name}; '
          f'batch {cfg.train_dataloader.batch_size} per GPU')
    print(f'\n  {"setting":<24} | {"weights":>7} {"grads":>7} {"optim":>7} {"buckets":>7} {"activ.":>7} | '
          f'{"GPU GiB":>9} {"CPU/node":>9} | fits')
    print(row(f'this config (ZeRO-{own.stage}{", offload" if own.offload else ""})', own))
    for stage in (0, 1, 2, 3):
        for offload in (False, True):
            if stage == 0 and offload:
                continue
            print(row(f'ZeRO-{stage}{" offload" if offload else ""}', plan(stage=stage, offload=offload)))


if __name__ == '__main__':
    sys.exit(main())
