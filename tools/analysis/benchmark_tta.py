"""Multi-scale + flip test-time augmentation, measured side by side in one run: images/s of

1. mmseg's own TTA: ``SegTTAModel`` over mmseg's ``EncoderDecoder`` (one slide inference per
   augmentation, one crop at a time);
2. ``SegTTAModel`` over our ``BatchedSlideEncoderDecoder`` (crops batched within each augmentation);
3. ours: ``BatchedSegTTAModel`` (the crops of all augmentations batched together by shape),

on the same model, weights and images: the demo's tiny InternViT + simple FPN + UperNet (150 classes)
with the recipes' slide geometry (crop 504, stride 322) and TTA (0.5 .. 1.75 x the (2016, 504) test
scale, x 2 flips, from ``configs/_base_/datasets/ade20k_504x504.py``), on ADE20K-sized 504 x 672
images. The merged logits of all three are compared.

    python tools/analysis/benchmark_tta.py [--images 2] [--repeats 3] [--device cuda] [--width 96]

``--width`` widens the tiny backbone (the encoder's share of the work grows with it; on the CPU the
150-class, image-sized logits of the decode head and the merge dominate at the demo's width).
"""
import argparse
import copy
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config, ConfigDict
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import init_default_scope

import mmseg_custom  # noqa: F401
from internvl.analysis.profiling import interleaved_times, print_rates
from internvl.models.linear import set_cpu_linear_backend
from mmseg.registry import MODELS

CONFIGS = Path(__file__).resolve().parents[2] / 'configs'
DEMO = CONFIGS / 'seg' / 'demo' / 'upernet_internvit-tiny_1xb8-500it_synthetic-ade-112x112.py'
RECIPE = CONFIGS / 'seg' / 'internvit' / 'upernet_internvit-6b-224px-frozen_8xb2-80k_ade20k-504x504.py'


def tta_batch(recipe: Config, images: int) -> dict:
    """The recipe's tta_pipeline on random 504 x 672 images (read from memory, no labels)."""
    steps = copy.deepcopy(recipe.tta_pipeline)
    steps[0] = dict(type='LoadImageFromNDArray')
    steps[1].transforms = [group for group in steps[1].transforms if group[0].type != 'LoadAnnotations']
    pipeline = Compose(steps)
    rng = np.random.default_rng(0)
    return pseudo_collate([pipeline(dict(img=rng.integers(0, 256, (504, 672, 3), dtype=np.uint8), img_path=f'{i}'))
                           for i in range(images)])


def build(model_cfg: ConfigDict, tta: str, segmentor: str, device: str = 'cpu') -> torch.nn.Module:
    return MODELS.build(ConfigDict(type=tta, module=ConfigDict(model_cfg, type=segmentor))).eval().to(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--images', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--width', type=int, default=96, help='backbone width (heads of 32 channels)')
    args = parser.parse_args()
    set_cpu_linear_backend()  # the CPU inference back-end, as every tool chooses it (INTERNVL_CPU_LINEAR)
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model_cfg = Config.fromfile(str(DEMO)).model
    model_cfg.test_cfg = ConfigDict(mode='slide', crop_size=(504, 504), stride=(322, 322), crop_batch_size=8)
    model_cfg.backbone.arch.update(embed_dims=args.width, num_heads=args.width // 32)
    model_cfg.decode_head.in_channels = [args.width] * 4
    model_cfg.auxiliary_head.in_channels = args.width
    candidates = {name: build(model_cfg, tta, segmentor, args.device) for name, tta, segmentor in (
        ('mmseg SegTTAModel + EncoderDecoder', 'SegTTAModel', 'EncoderDecoder'),
        ('SegTTAModel + batched slide', 'SegTTAModel', 'BatchedSlideEncoderDecoder'),
        ('ours (BatchedSegTTAModel)', 'BatchedSegTTAModel', 'BatchedSlideEncoderDecoder'))}
    weights = candidates['ours (BatchedSegTTAModel)'].state_dict()
    for model in candidates.values():
        model.load_state_dict(weights)
    data = tta_batch(Config.fromfile(str(RECIPE)), args.images)
    print(f'torch {torch.__version__}, {args.device} ({torch.get_num_threads()} CPU threads), fp32; {args.images} '
          f'image(s) of 504x672, {len(data["inputs"])} augmentations each (6 scales x 2 flips), crop 504 stride 322, '
          f'tiny preset of width {args.width}')
    with torch.inference_mode():
        results = {name: model.test_step(copy.deepcopy(data)) for name, model in candidates.items()}
    reference = results['mmseg SegTTAModel + EncoderDecoder']
    for name, result in results.items():
        diff = max((a.seg_logits.data - b.seg_logits.data).abs().max().item() for a, b in zip(result, reference))
        agree = np.mean([(a.pred_sem_seg.data == b.pred_sem_seg.data).float().mean().item()
                         for a, b in zip(result, reference)])
        print(f'  {name}: max |logits - mmseg| {diff:.2e}, merged prediction equal on {100 * agree:.3f}% of pixels')
    times = interleaved_times({name: (lambda m=model: m.test_step(copy.deepcopy(data)))
                               for name, model in candidates.items()}, args.repeats, device=args.device)
    print_rates(times, args.images, 'images/s', baseline='mmseg SegTTAModel + EncoderDecoder',
                candidate='ours (BatchedSegTTAModel)', ratio_label='ours / mmseg TTA')
    print_rates({k: times[k] for k in ('SegTTAModel + batched slide', 'ours (BatchedSegTTAModel)')}, args.images,
                'images/s', baseline='SegTTAModel + batched slide', candidate='ours (BatchedSegTTAModel)',
                ratio_label='ours / per-augmentation batched slide')


if __name__ == '__main__':
    main()
