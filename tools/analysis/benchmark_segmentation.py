"""Segmentation speed, measured side by side in one run:

1. slide inference images/s of our BatchedSlideEncoderDecoder against mmseg's own EncoderDecoder
   slide inference, same model and weights, on 504x2016 images (crop 504, stride 322);
2. training iterations/s of the demo config (tiny InternViT + simple FPN + UperNet) against mmseg's
   own VisionTransformer + MultiLevelNeck + UperNet of equal width, depth and input.

    python tools/analysis/benchmark_segmentation.py [--repeats 5]
"""
import argparse
import copy
from pathlib import Path

import torch
from mmengine.config import Config, ConfigDict
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

import mmseg_custom  # noqa: F401
from internvl.analysis.profiling import interleaved_times, print_rates
from internvl.models.linear import set_cpu_linear_backend
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmengine.structures import PixelData
from internvl.utils.sliding import slide_windows

DEMO = Path(__file__).resolve().parents[2] / 'configs' / 'seg' / 'demo' / \
    'upernet_internvit-tiny_1xb8-500it_synthetic-ade-112x112.py'


def slide_benchmark(cfg: Config, repeats: int, batch: int) -> None:
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.test_cfg = ConfigDict(mode='slide', crop_size=(504, 504), stride=(322, 322), crop_batch_size=8)
    model_cfg.backbone.arch.img_size = 504
    ours = MODELS.build(ConfigDict(model_cfg, type='BatchedSlideEncoderDecoder')).eval()
    theirs = MODELS.build(ConfigDict(model_cfg, type='EncoderDecoder')).eval()
    theirs.load_state_dict(ours.state_dict())
    images = torch.randn(batch, 3, 504, 2016)
    metas = [dict(img_shape=(504, 2016), ori_shape=(504, 2016), pad_shape=(504, 2016))] * batch
    windows = len(slide_windows(504, 2016, (504, 504), (322, 322)))
    times = interleaved_times({
        'mmseg EncoderDecoder': lambda: theirs.slide_inference(images, [dict(m) for m in metas]),
        'ours (batched crops)': lambda: ours.slide_inference(images, [dict(m) for m in metas])}, repeats)
    print(f'\n[1] slide inference, {batch} image(s) of 504x2016, {windows} windows of 504 each, tiny preset')
    print_rates(times, batch, 'images/s', baseline='mmseg EncoderDecoder', candidate='ours (batched crops)')


def mmseg_vit_equivalent(cfg: Config) -> ConfigDict:
    """mmseg's own ViT + MultiLevelNeck + the same UperNet, with our backbone's width, depth and taps."""
    arch = cfg.model.backbone.arch
    model = copy.deepcopy(cfg.model)
    model.backbone = ConfigDict(type='VisionTransformer', img_size=arch.img_size, patch_size=arch.patch_size,
                                embed_dims=arch.embed_dims, num_layers=arch.num_layers, num_heads=arch.num_heads,
                                mlp_ratio=int(arch.mlp_ratio), out_indices=list(cfg.model.backbone.out_indices),
                                final_norm=False, with_cls_token=True, interpolate_mode='bicubic')
    model.neck = ConfigDict(type='MultiLevelNeck', in_channels=[arch.embed_dims] * 4, out_channels=arch.embed_dims,
                            scales=[4, 2, 1, 0.5])
    return model


def train_benchmark(cfg: Config, repeats: int) -> None:
    batch = cfg.train_dataloader.batch_size
    h, w = cfg.crop_size
    samples = []
    for _ in range(batch):
        sample = SegDataSample(gt_sem_seg=PixelData(data=torch.randint(0, 150, (1, h, w))))
        sample.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        samples.append(sample)
    data = dict(inputs=[torch.randint(0, 255, (3, h, w), dtype=torch.uint8) for _ in range(batch)],
                data_samples=samples)
    steps = {}
    for name, model_cfg in (('mmseg ViT + UperNet', mmseg_vit_equivalent(cfg)), ('ours', cfg.model)):
        model = MODELS.build(model_cfg).train()  # random weights: the speed does not depend on them
        optim = build_optim_wrapper(model, dict(type='OptimWrapper', optimizer=cfg.optim_wrapper.optimizer))
        steps[name] = lambda model=model, optim=optim: model.train_step(data, optim)
    times = interleaved_times(steps, repeats, inference=False)
    print(f'\n[2] training iterations (forward, backward, AdamW step), batch {batch} of {h}x{w}, '
          f'width {cfg.model.backbone.arch.embed_dims}, depth {cfg.model.backbone.arch.num_layers}')
    print_rates(times, 1, 'it/s', baseline='mmseg ViT + UperNet', candidate='ours', ratio_label='ours / mmseg')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--batch', type=int, default=1, help='images per slide-inference call')
    args = parser.parse_args()
    set_cpu_linear_backend()  # the CPU inference back-end, as every tool chooses it (INTERNVL_CPU_LINEAR)
    init_default_scope('mmseg')
    torch.manual_seed(0)
    cfg = Config.fromfile(str(DEMO))
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, fp32')
    slide_benchmark(cfg, args.repeats, args.batch)
    train_benchmark(cfg, args.repeats * 4)


if __name__ == '__main__':
    main()
