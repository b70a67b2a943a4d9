"""Benchmark InternViT on this machine, every figure measured side by side in one run.

1. forward images/s of our InternViT against transformers' InternVLVisionModel (SDPA) carrying the
   same weights, at one shared config (interleaved runs, medians);
2. achieved GFLOP/s of our forward against a measured fp32 matmul peak (best of square products
   1024..4096, each the median of several repeats);
3. a training step (forward + backward of every parameter, fp32) of ours against transformers' with
   the same weights (interleaved runs, medians);
4. activation memory of one training step (peak minus what was held before the forward) with and
   without ``with_cp``.

    python tools/analysis/benchmark_backbone.py [--width 1024 --depth 8 --batch 8 --img 224]
"""
import argparse
import os
from typing import Callable

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')

import torch  # noqa: E402

from internvl import InternViT  # noqa: E402
from internvl.checkpoint import convert_transformers  # noqa: E402
from internvl.models.linear import set_cpu_linear_backend  # noqa: E402
from internvl.analysis.profiling import (count_flops, interleaved_times, matmul_peak_gflops, median,  # noqa: E402
                                      print_rates, training_step_memory)


def build_pair(width: int, depth: int, heads: int, img: int) -> tuple[torch.nn.Module, InternViT]:
    from transformers import InternVLVisionConfig, InternVLVisionModel
    config = InternVLVisionConfig(hidden_size=width, num_hidden_layers=depth, num_attention_heads=heads,
                                  intermediate_size=4 * width, use_qk_norm=True, norm_type='rms_norm',
                                  attention_bias=False, image_size=img, patch_size=14,
                                  attn_implementation='sdpa')
    reference = InternVLVisionModel(config).eval()
    arch = dict(embed_dims=width, num_layers=depth, num_heads=heads, mlp_ratio=4.0, norm_type='rms', qk_norm=True,
                qkv_bias=False, layer_scale_init=0.1, patch_size=14, img_size=img)
    ours = InternViT(arch, out_indices=[depth - 1]).eval()
    ours.load_state_dict(convert_transformers(reference.state_dict()))
    return reference, ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--width', type=int, default=1024)
    parser.add_argument('--depth', type=int, default=8)
    parser.add_argument('--heads', type=int, default=16)
    parser.add_argument('--img', type=int, default=224)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--mem-batch', type=int, nargs='+', default=[8, 16],
                        help='batches of the training-step memory figure')
    args = parser.parse_args()
    set_cpu_linear_backend()  # the CPU inference back-end, as every tool chooses it (INTERNVL_CPU_LINEAR)
    torch.manual_seed(0)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads; config: width {args.width}, depth '
          f'{args.depth}, heads {args.heads}, {args.img}px, batch {args.batch}, fp32')

    reference, ours = build_pair(args.width, args.depth, args.heads, args.img)
    images = torch.randn(args.batch, 3, args.img, args.img)
    with torch.inference_mode():
        err = (ours(images)[0].flatten(2).transpose(1, 2) - reference(images).last_hidden_state[:, 1:]).abs().max()
    times = interleaved_times({'transformers': lambda: reference(images), 'ours': lambda: ours(images)},
                              args.repeats)
    t_ours = median(times['ours'])
    pair_ratios = [r / o for r, o in zip(times['transformers'], times['ours'])]
    print('\n[1] forward throughput (interleaved, median of %d); transformers = InternVLVisionModel (sdpa)'
          % args.repeats)
    print_rates(times, args.batch, 'images/s', baseline='transformers', candidate='ours')
    print(f'  median of per-pair ratios {median(pair_ratios):.3f}x; max |difference| of outputs {err:.2e}')

    flops = count_flops(lambda: ours(images))
    reference_flops = count_flops(lambda: reference(images))
    peak, rates = matmul_peak_gflops()
    achieved = flops / t_ours / 1e9
    print('\n[2] compute efficiency')
    for backend, by_size in rates.items():
        print(f'  fp32 matmul, {backend:7}: ' + ', '.join(f'{n}: {r:.1f}' for n, r in by_size.items()) + ' GFLOP/s')
    print(f'  peak (best of all): {peak:.1f} GFLOP/s')
    print(f'  FLOPs per forward (torch FlopCounterMode): ours {flops / 1e9:.1f} G, transformers '
          f'{reference_flops / 1e9:.1f} G')
    print(f'  ours: {flops / 1e9:.1f} GFLOP per forward -> {achieved:.1f} GFLOP/s = {achieved / peak:.1%} of peak')

    print(f'\n[3] training step (forward + backward, fp32, batch {args.batch}, interleaved, median of '
          f'{args.repeats})')
    reference.train()
    ours.train()

    def step(model: torch.nn.Module, forward: Callable[[], torch.Tensor]) -> Callable[[], None]:
        def run() -> None:
            model.zero_grad(set_to_none=True)
            forward().square().mean().backward()
        return run

    train_times = interleaved_times({
        'transformers': step(reference, lambda: reference(images).last_hidden_state[:, 1:]),
        'ours': step(ours, lambda: ours(images)[0])}, args.repeats, inference=False)
    print_rates(train_times, args.batch, 'images/s', baseline='transformers', candidate='ours')

    print(f'\n[4] training step memory, depth {args.depth} (peak - before includes the gradients, '
          f'{sum(p.numel() for p in ours.parameters()) * 4 / 2**20:.0f} MiB)')
    ours.train()
    for batch in args.mem_batch:
        mem_images = torch.randn(batch, 3, args.img, args.img)
        figures = {}
        for with_cp in (False, True):
            ours.with_cp = with_cp
            figures[with_cp] = training_step_memory(
                ours, lambda: sum(o.square().mean() for o in ours(mem_images)).backward(), mem_images)
            f = figures[with_cp]
            print(f'  batch {batch:3}, with_cp={with_cp!s:5}: peak - before {f["peak_minus_before"] / 2**20:8.1f} MiB, '
                  f'activations at peak {f["activations"] / 2**20:8.1f} MiB')
        ratio = figures[True]['peak_minus_before'] / figures[False]['peak_minus_before']
        act_ratio = figures[True]['activations'] / figures[False]['activations']
        print(f'  batch {batch:3}, with_cp / plain: {ratio:.3f}x (peak - before), {act_ratio:.3f}x (activations)')


if __name__ == '__main__':
    main()
