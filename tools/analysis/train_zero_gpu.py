"""A few full-tuning iterations of the real InternViT-6B under DeepSpeed ZeRO on one GPU: step time,
peak memory and model FLOPs utilisation.

The model is the full-tuning recipe's trainable part without OpenMMLab (which the lent GPU machine
does not have): InternViT-6B-224px (48 blocks, drop path 0.4, activation checkpointing per block),
the simple FPN on blocks [11, 23, 35, 47], and a 1x1-conv classifier (150 classes) on each FPN level,
summed at stride 3.5, with cross-entropy on random labels; crop 504, batch 2, bf16, gradient
clipping 1.0, AdamW with the layer-decay groups (decay 0.95), as the client optimizer.

    python tools/analysis/train_zero_gpu.py [--stage 1] [--offload] [--steps 6]
"""
import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from internvl import InternViT
from internvl.models import SimpleFPN
from internvl.models.layer_decay import layer_decay_param_groups
from internvl.utils.dist import single_process_env
from internvl.analysis.profiling import count_flops, interleaved_times, median


class Segmenter(nn.Module):
    def __init__(self, arch: str, taps: list[int], num_classes: int = 150) -> None:
        super().__init__()
        self.vit = InternViT(arch, drop_path_rate=0.4, with_cp=True, out_indices=taps)
        self.fpn = SimpleFPN(self.vit.embed_dims)
        self.heads = nn.ModuleList(nn.Conv2d(self.vit.embed_dims, num_classes, 1) for _ in taps)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        levels = self.fpn(self.vit(images))
        size = levels[0].shape[-2:]
        return sum(F.interpolate(head(x), size=size, mode='bilinear', align_corners=False)
                   for head, x in zip(self.heads, levels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--arch', default='internvit-6b-224px')
    parser.add_argument('--taps', type=int, nargs=4, default=[11, 23, 35, 47])
    parser.add_argument('--crop', type=int, default=504)
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--stage', type=int, default=1)
    parser.add_argument('--offload', action='store_true', help='offload the optimizer to CPU memory')
    parser.add_argument('--steps', type=int, default=6)
    args = parser.parse_args()
    single_process_env()
    import deepspeed

    torch.manual_seed(0)
    with torch.device('meta'):
        meta_model = Segmenter(args.arch, args.taps).eval()
    flops_per_image = count_flops(lambda: meta_model(torch.empty(1, 3, args.crop, args.crop, device='meta')))
    params = sum(p.numel() for p in meta_model.parameters())
    meta_model = None  # free it (the lambda above holds the name, not the model)
    a = torch.randn(8192, 8192, device='cuda', dtype=torch.bfloat16)
    peak = 2 * 8192 ** 3 / median(interleaved_times({'mm': lambda: a @ a}, 10, 3, 'cuda')['mm']) / 1e12
    a = None
    print(f'{torch.cuda.get_device_name()}, torch {torch.__version__}, deepspeed {deepspeed.__version__}')
    print(f'{args.arch} + simple FPN + heads: {params / 1e9:.3f}B parameters, {flops_per_image / 1e12:.2f} TFLOP '
          f'per {args.crop}px image forward; bf16 matmul peak measured {peak:.0f} TFLOP/s')

    with torch.device('cuda'):
        model = Segmenter(args.arch, args.taps)
    optimizer = torch.optim.AdamW(layer_decay_param_groups(model, 4e-5, 0.05, 0.95), betas=(0.9, 0.999))
    zero = dict(stage=args.stage, reduce_bucket_size=5e8, allgather_bucket_size=5e8, overlap_comm=True,
                contiguous_gradients=True)
    if args.offload:
        zero['offload_optimizer'] = dict(device='cpu', pin_memory=True)
    config = dict(train_micro_batch_size_per_gpu=args.batch, gradient_accumulation_steps=1, gradient_clipping=1.0,
                  bf16=dict(enabled=True), zero_optimization=zero, zero_allow_untested_optimizer=True,
                  zero_force_ds_cpu_optimizer=False, steps_per_print=10 ** 9)
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=config)
    groups = engine.optimizer.param_groups
    print(f'ZeRO-{args.stage}{" + optimizer offload" if args.offload else ""}: {len(groups)} parameter groups '
          f'reached DeepSpeed, lr {min(g["lr"] for g in groups):.3g} .. {max(g["lr"] for g in groups):.3g}')

    images = torch.randn(args.batch, 3, args.crop, args.crop, device='cuda', dtype=torch.bfloat16)
    size = args.crop * 2 // 7  # stride 3.5
    labels = torch.randint(0, 150, (args.batch, size, size), device='cuda')
    torch.cuda.reset_peak_memory_stats()
    times, losses = [], []
    for step in range(args.steps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        loss = F.cross_entropy(engine(images).float(), labels)
        engine.backward(loss)
        engine.step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        losses.append(loss.item())
    step_time = median(times[1:])
    model_flops = 3 * flops_per_image * args.batch  # forward + backward; the recomputation is not counted
    print(f'losses: {", ".join(f"{v:.4f}" for v in losses)}')
    print(f'step time {step_time * 1e3:.0f} ms (median of steps 2..{args.steps}), peak memory '
          f'{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB, MFU {model_flops / step_time / 1e12 / peak:.1%} '
          f'of the measured peak ({model_flops / step_time / 1e12:.0f} TFLOP/s)')


if __name__ == '__main__':
    main()
