"""How long counting FLOPs takes, side by side in one run: fvcore's trace of every block against the trace
of one InternViT block per kind (``internvl.analysis.flops.block_per_kind_analysis``, what
``tools/analysis/get_flops.py`` does), on the InternViT-6B width at a reduced depth (the full trace of
48 blocks takes minutes), then the whole 6B-224 UperNet recipe at its 504 crop the fast way.

    python tools/analysis/benchmark_flops.py [--depth 6] [--out docs/benchmark_flops.txt]

Target: the 6B recipe counted in under 60 s on this machine, with the same count as the full trace.
"""
import argparse
import os
import time
from pathlib import Path

import torch

import internvl_mmlab  # noqa: F401
from internvl.models import ARCH_PRESETS, build_on_meta
from internvl.analysis.flops import block_per_kind_analysis, flop_analysis, without_weights
from internvl_mmlab.analysis.flops import config_shape, count_config
from internvl_mmlab.cli import load_config

RECIPE = 'configs/seg/internvit/upernet_internvit-6b-224px_8xb2-80k_ade20k-504x504.py'


def timed(count) -> tuple[int, float]:
    start = time.perf_counter()
    flops = count()
    return flops, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--depth', type=int, default=6, help='blocks of the reduced 6B for the side-by-side')
    parser.add_argument('--out', default='docs/benchmark_flops.txt')
    args = parser.parse_args()
    arch = dict(ARCH_PRESETS['internvit-6b-224px'], num_layers=args.depth)
    vit = without_weights(build_on_meta(arch, out_indices=[args.depth - 1]))
    images = (torch.zeros(1, 3, 504, 504),)
    full, full_s = timed(lambda: flop_analysis(vit, images).total())
    fast, fast_s = timed(lambda: block_per_kind_analysis(vit, images).total())
    cfg = load_config(RECIPE)
    shape = config_shape(cfg)
    recipe, recipe_s = timed(lambda: count_config(cfg, shape).flops)
    lines = [
        f'# {Path(__file__).name}: torch {torch.__version__}, {torch.get_num_threads()} threads, this CPU '
        f'({os.cpu_count()} cores)',
        '| what | FLOPs (G) | seconds |', '|---|---|---|',
        f'| InternViT-6B width, {args.depth} blocks, 504x504: fvcore, every block traced | {full / 1e9:.1f} | '
        f'{full_s:.1f} |',
        f'| the same, one block per kind traced | {fast / 1e9:.1f} | {fast_s:.1f} |',
        f'| {Path(RECIPE).name} (48 blocks + simple FPN + UperNet) at {shape[0]}x{shape[1]}, one block per kind '
        f'| {recipe / 1e9:.1f} | {recipe_s:.1f} |',
        f'same count: {full == fast}; speed-up at {args.depth} blocks: {full_s / fast_s:.1f}x',
    ]
    print('\n'.join(lines))
    Path(args.out).write_text('\n'.join(lines) + '\n')


if __name__ == '__main__':
    main()
