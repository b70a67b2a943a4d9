"""Plan GPU memory for training a config under DeepSpeed ZeRO: per GPU, parameters / gradients /
optimizer states / activations for ZeRO stages 0-3, with and without optimizer CPU offload, and which
settings fit.

    python tools/analysis/estimate_memory.py CONFIG --gpus 8 --gpu-mem 80 [--measure-size 252]

The model is built on the meta device for its parameter counts (no weights are read). Activations
are measured on 1- and 2-block copies of the model at --measure-size (a multiple of 28) and scaled to
the config's depth, crop and batch per GPU.
"""
import argparse

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmseg_custom  # noqa: F401
from mmengine_custom.memory import measure_activations, model_state_bytes
from mmseg.registry import MODELS

GIB = 2 ** 30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('--gpus', type=int, default=8, help='GPUs in all')
    parser.add_argument('--gpus-per-node', type=int, default=8)
    parser.add_argument('--gpu-mem', type=float, default=80, help='memory of one GPU, GiB')
    parser.add_argument('--measure-size', type=int, default=252,
                        help='input side of the activation measurement, a multiple of 28')
    args = parser.parse_args()
    cfg = Config.fromfile(args.config)
    init_default_scope(cfg.get('default_scope', 'mmseg'))

    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())
    backbone = model.backbone.vit
    depth, with_cp = backbone.num_layers, backbone.with_cp
    batch = cfg.train_dataloader.batch_size
    crop = cfg.model.data_preprocessor.size
    strategy = cfg.get('strategy') or {}
    bf16 = bool(strategy.get('bf16', {}).get('enabled')) or cfg.model.backbone.get('backbone_dtype') == 'bfloat16'
    print(f'{args.config}\n  parameters {total / 1e9:.3f}B, trainable {trainable / 1e9:.3f}B, largest layer '
          f'{largest / 1e6:.1f}M; {depth} blocks, with_cp={with_cp}; batch {batch} per GPU at {crop[0]}x{crop[1]}; '
          f'{"bf16" if bf16 else "fp32"} compute; {args.gpus} GPUs of {args.gpu_mem:g} GiB')

    profile = measure_activations(MODELS.build, cfg.model, args.measure_size, cfg.model.decode_head.num_classes)
    activations = profile.scaled(depth, batch, crop[0] * crop[1], with_cp, 2 if bf16 else 4)
    print(f'  activations measured at {args.measure_size}px: {profile.per_block / 2**20:.1f} MiB per block, '
          f'{profile.rest / 2**20:.1f} MiB for embeddings/FPN/heads (batch 1, fp32) -> {activations / GIB:.1f} GiB')

    print(f'\n  {"ZeRO":>4} {"offload":>7} | {"params":>8} {"grads":>8} {"optim":>8} {"activ.":>8} | '
          f'{"GPU total":>9} {"CPU/node":>9} | fits')
    for stage in (0, 1, 2, 3):
        for offload in (False, True):
            if stage == 0 and offload:
                continue
            states = model_state_bytes(total, trainable, stage, args.gpus, offload, args.gpus_per_node, largest)
            gpu = states.gpu_total + activations
            fits = 'yes' if gpu <= args.gpu_mem * GIB else 'no'
            print(f'  {stage:>4} {str(offload):>7} | {states.params / GIB:8.1f} {states.grads / GIB:8.1f} '
                  f'{states.optimizer / GIB:8.1f} {activations / GIB:8.1f} | {gpu / GIB:9.1f} '
                  f'{states.cpu / GIB:9.1f} | {fits}')


if __name__ == '__main__':
    main()
