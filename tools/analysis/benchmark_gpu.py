"""InternViT at full size on a GPU: exactness, speed and training memory, side by side in one run.

Needs only torch, safetensors, tqdm and transformers (no OpenMMLab), so it runs on the lent GPU
machine as it is. For the arch (default InternViT-6B-448px, 45 blocks, 5.5B parameters):

1. fp32 (TF32 off): every tapped block's output against transformers' InternVLVisionModel with the
   same weights (relative error);
2. bf16 inference: images/s of ours against transformers (SDPA), interleaved, medians;
3. bf16 training step (forward + backward, no optimizer): time, peak memory, model FLOPs
   utilisation against the measured bf16 matmul peak, with and without ``with_cp``;
4. (``--slide``, alone) slide inference of InternViT-6B-224px + simple FPN over the windows of a
   504x2016 image (crop 504, stride 322): the crops one by one, as mmseg runs them, against all at once,
   as ``BatchedSlideEncoderDecoder`` runs them (the heads need mmseg, which the GPU machine lacks).

    python tools/analysis/benchmark_gpu.py [--arch internvit-6b-448px --img 448] [--slide]
"""
import argparse
import gc
import os
import time

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')

import torch  # noqa: E402

from internvl import InternViT, count_parameters  # noqa: E402
from internvl.checkpoint import convert_transformers  # noqa: E402
from internvl.models import ARCH_PRESETS  # noqa: E402
from internvl.analysis.profiling import count_flops, interleaved_times, median, print_rates  # noqa: E402


def reference_for(arch: dict, device: str) -> torch.nn.Module:
    from transformers import InternVLVisionConfig, InternVLVisionModel
    config = InternVLVisionConfig(
        hidden_size=arch['embed_dims'], num_hidden_layers=arch['num_layers'], num_attention_heads=arch['num_heads'],
        intermediate_size=int(arch['embed_dims'] * arch['mlp_ratio']), use_qk_norm=arch['qk_norm'],
        norm_type='rms_norm' if arch['norm_type'] == 'rms' else 'layer_norm', attention_bias=arch['qkv_bias'],
        layer_scale_init_value=arch['layer_scale_init'], image_size=arch['img_size'],
        patch_size=arch['patch_size'], attn_implementation='sdpa')
    with torch.device(device):
        return InternVLVisionModel(config).eval()


def matmul_peak_tflops(device: str, dtype: torch.dtype, n: int = 8192) -> float:
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    return 2 * n ** 3 / median(interleaved_times({'mm': lambda: a @ b}, 10, 3, device)['mm']) / 1e12


def training_step(model: InternViT, images: torch.Tensor, device: str) -> tuple[float, float]:
    """Seconds and peak GiB of one forward + backward (median of 3 after a warm-up)."""
    times = []
    for i in range(4):
        model.zero_grad(set_to_none=True)
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        torch.cuda.synchronize(device)
        start = time.perf_counter()
        loss = sum(o.float().square().mean() for o in model(images))
        loss.backward()
        torch.cuda.synchronize(device)
        if i:
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 30
    model.zero_grad(set_to_none=True)
    return median(times), peak


def slide_crops(device: str) -> None:
    from internvl.models import SimpleFPN
    from internvl.utils.sliding import slide_windows
    with torch.device(device):
        vit = InternViT('internvit-6b-224px', out_indices=[11, 23, 35, 47]).eval().to(torch.bfloat16)
        fpn = SimpleFPN(vit.embed_dims).eval().to(torch.bfloat16)
    image = torch.randn(1, 3, 504, 2016, device=device, dtype=torch.bfloat16)
    crops = [image[..., y1:y2, x1:x2] for y1, y2, x1, x2 in slide_windows(504, 2016, (504, 504), (322, 322))]
    batched = torch.cat(crops)
    times = interleaved_times({'one by one': lambda: [fpn(vit(c)) for c in crops],
                               'batched': lambda: fpn(vit(batched))}, 5, 1, device)
    print(f'[4] slide inference of InternViT-6B-224px + simple FPN (bf16) over the {len(crops)} windows of a '
          f'504x2016 image (crop 504, stride 322)')
    print_rates(times, 1, 'images/s', baseline='one by one', candidate='batched')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--arch', default='internvit-6b-448px', choices=sorted(ARCH_PRESETS))
    parser.add_argument('--img', type=int, default=448)
    parser.add_argument('--batch', type=int, default=8, help='inference batch')
    parser.add_argument('--train-batch', type=int, default=2)
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--slide', action='store_true', help='run section 4 only')
    args = parser.parse_args()
    device = args.device
    if args.slide:
        return slide_crops(device)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    print(f'{torch.cuda.get_device_name(device)}, torch {torch.__version__}')

    reference = reference_for(ARCH_PRESETS[args.arch], device)
    depth = reference.config.num_hidden_layers
    taps = sorted({max(depth // 4 - 1, 0), depth // 2 - 1, 3 * depth // 4 - 1, depth - 1})
    with torch.device(device):
        ours = InternViT(args.arch, out_indices=taps).eval()
    ours.load_state_dict(convert_transformers(reference.state_dict()))
    print(f'{args.arch}: {count_parameters(ours) / 1e9:.3f}B parameters, taps {taps}')

    images = torch.randn(2, 3, args.img, args.img, device=device)
    with torch.inference_mode():
        hidden = reference(images, output_hidden_states=True).hidden_states
        outs = ours(images)
    print(f'\n[1] fp32, {args.img}px, batch 2: relative error of each tapped block against transformers')
    for i, out in zip(taps, outs):
        want = hidden[i + 1][:, 1:].transpose(1, 2).reshape(out.shape)
        print(f'  block {i:2}: {((out - want).norm() / want.norm()).item():.2e}')
    del hidden, outs

    reference.to(torch.bfloat16)
    ours.to(torch.bfloat16)
    images = torch.randn(args.batch, 3, args.img, args.img, device=device, dtype=torch.bfloat16)
    ours.out_indices = (depth - 1,)
    times = interleaved_times({'transformers': lambda: reference(images), 'ours': lambda: ours(images)}, 10, 2,
                              device)
    print(f'\n[2] bf16 inference, {args.img}px, batch {args.batch} (interleaved, median of 10)')
    print_rates(times, args.batch, 'images/s', baseline='transformers', candidate='ours')
    reference = None  # free the reference model before the training-step figures
    gc.collect()
    torch.cuda.empty_cache()

    peak = matmul_peak_tflops(device, torch.bfloat16)
    train_images = torch.randn(args.train_batch, 3, args.img, args.img, device=device, dtype=torch.bfloat16)
    flops = 3 * count_flops(lambda: ours(train_images))  # forward + backward (2x), recomputation not counted
    print(f'\n[3] bf16 training step (forward + backward), {args.img}px, batch {args.train_batch}; '
          f'{flops / 1e12:.1f} TFLOP of model work; bf16 matmul peak measured {peak:.0f} TFLOP/s')
    ours.train()
    results = {}
    for with_cp in (False, True):
        ours.with_cp = with_cp
        try:
            seconds, gib = training_step(ours, train_images, device)
        except torch.cuda.OutOfMemoryError:
            print(f'  with_cp={with_cp!s:5}: out of memory')
            continue
        results[with_cp] = gib
        print(f'  with_cp={with_cp!s:5}: {seconds * 1e3:7.1f} ms/step, peak {gib:6.1f} GiB, '
              f'MFU {flops / seconds / 1e12 / peak:.1%} of measured peak')
    weights = count_parameters(ours) * 2 * 2 / 2 ** 30
    if len(results) == 2:
        print(f'  activation memory (peak - bf16 weights and grads, {weights:.1f} GiB): '
              f'{results[False] - weights:.1f} -> {results[True] - weights:.1f} GiB '
              f'({(results[True] - weights) / (results[False] - weights):.3f}x)')


if __name__ == '__main__':
    main()
