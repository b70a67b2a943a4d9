"""Benchmark the detection backbones on this machine, every figure measured side by side in one run
(interleaved runs, medians; training steps = forward + backward of every trainable parameter, fp32):

1. windowed attention (window 16, one global block in four) against global attention in every block:
   the InternViT backbone alone (the target), and with the ViTDet simple FPN (one tap -> strides
   4 / 8 / 16 / 32), which costs the same in both;
2. the ViT-Adapter (interactions over the four quarters of the blocks) against that bare backbone +
   simple FPN, on the same windowed ViT: the adapter's step-time overhead, at the benchmark's size and
   at ViT-B's (width 768, depth 12, 12 heads, the size the original's figure is for) at ``--vitb-img``.

    python tools/analysis/benchmark_detection.py [--img 1024 --width 256 --depth 8 --heads 4 --repeats 3]
"""
import argparse

import torch

import mmdet_custom  # noqa: F401  (the backbones in mmdet's registry)
from internvl.analysis.profiling import interleaved_times, median
from internvl.models.linear import set_cpu_linear_backend
from mmdet.registry import MODELS


def backbone_cfg(width: int, depth: int, heads: int, window: int) -> dict:
    arch = dict(embed_dims=width, num_layers=depth, num_heads=heads, mlp_ratio=4.0, norm_type='rms', qk_norm=True,
                qkv_bias=False, layer_scale_init=0.1, patch_size=16, img_size=256)
    every_fourth = [i for i in range(depth) if i % 4 == 3]
    return dict(type='InternViT', arch=arch, use_cls_token=False, window_size=window,
                global_attn_indexes=every_fourth if window else [])


def training_step(model: torch.nn.Module, images: torch.Tensor):
    def step() -> None:
        sum(o.float().mean() for o in model(images)).backward()
        model.zero_grad(set_to_none=True)
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--img', type=int, default=1024)
    parser.add_argument('--width', type=int, default=256)
    parser.add_argument('--depth', type=int, default=8)
    parser.add_argument('--heads', type=int, default=4)
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--vitb-img', type=int, default=512, help='input side of the ViT-B-sized adapter figure')
    args = parser.parse_args()
    set_cpu_linear_backend()  # the CPU inference back-end, as every tool chooses it (INTERNVL_CPU_LINEAR)
    torch.manual_seed(0)
    images = torch.randn(args.batch, 3, args.img, args.img)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads; {args.img}x{args.img}, batch {args.batch}, '
          f'patch 16, width {args.width}, depth {args.depth}, heads {args.heads}, fp32, training steps')

    print('\n[1] windowed (window 16, one global block in four) vs global attention in every block, '
          f'median of {args.repeats}')
    windowed = None
    for with_fpn in (False, True):
        models = {}
        for name, window in (('global', 0), ('windowed', 16)):
            cfg = dict(backbone_cfg(args.width, args.depth, args.heads, window), out_indices=[args.depth - 1],
                       with_fpn=with_fpn)
            models[name] = MODELS.build(cfg).train()
        models['global'].load_state_dict(models['windowed'].state_dict())
        times = interleaved_times({name: training_step(m, images) for name, m in models.items()}, args.repeats,
                                  inference=False)
        label = 'backbone + simple FPN' if with_fpn else 'backbone alone'
        print(f'  {label:21}: global {median(times["global"]):6.3f} s/step, windowed {median(times["windowed"]):6.3f} '
              f's/step, speed-up {median(times["global"]) / median(times["windowed"]):.2f}x'
              + ('' if with_fpn else ' (target >= 2x)'))
        windowed = models['windowed']

    print(f'\n[2] ViT-Adapter vs the bare backbone + simple FPN (same windowed ViT), median of {args.repeats}')
    adapter_overhead(windowed, images, args.width, args.depth, args.heads, args.repeats)
    torch.manual_seed(0)
    vitb_images = torch.randn(args.batch, 3, args.vitb_img, args.vitb_img)
    vitb = MODELS.build(dict(backbone_cfg(768, 12, 12, 16), out_indices=[11], with_fpn=True)).train()
    adapter_overhead(vitb, vitb_images, 768, 12, 12, args.repeats)


def adapter_overhead(bare: torch.nn.Module, images: torch.Tensor, width: int, depth: int, heads: int,
                     repeats: int) -> None:
    quarter = depth // 4
    adapter = MODELS.build(dict(backbone_cfg(width, depth, heads, 16), type='InternViTAdapter',
                                interaction_indexes=[[i * quarter, (i + 1) * quarter - 1] for i in range(4)],
                                deform_num_heads=heads, deform_ratio=0.5, norm_cfg=dict(type='BN'))).train()
    times = interleaved_times({'bare': training_step(bare, images), 'adapter': training_step(adapter, images)},
                              repeats, inference=False)
    params = {name: sum(p.numel() for p in m.parameters()) / 1e6 for name, m in (('bare', bare), ('adapter', adapter))}
    print(f'  width {width}, depth {depth}, {images.shape[-1]}px: bare {median(times["bare"]):6.3f} s/step '
          f'({params["bare"]:.1f} M params), adapter {median(times["adapter"]):6.3f} s/step ({params["adapter"]:.1f} M); '
          f'overhead {median(times["adapter"]) / median(times["bare"]) - 1:+.0%} (the original: about 10-20% for ViT-B)')


if __name__ == '__main__':
    main()
