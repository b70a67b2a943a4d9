"""Convert a checkpoint:

- any InternViT checkpoint (OpenGVLab HF, transformers-native, timm-style .pth, InternVL-Chat /
  InternVL-14B, mmengine) -> one safetensors file in this project's format, its keys and shapes
  checked against the architecture first;
- a DeepSpeed checkpoint directory (work_dir/iter_N.pth/, any ZeRO stage, any number of ranks) -> one
  fp32 checkpoint (DST .pth: an mmengine checkpoint; DST .safetensors) that tools/test.py and the
  plain Runner load;
- one of OpenGVLab's released segmentors (the original mmseg 0.x code's bare state dict) -> an mmseg 1.x
  checkpoint in our segmentor's layout (DST .pth or .safetensors), with the dataset's classes in its
  meta, that mmseg's ``init_model`` / ``MMSegInferencer`` load with our configs (``mmseg_custom.released``).

Pickled files are read with weights_only=True and an allowlist of inert classes; a file that holds
anything else is refused, naming the class. --trust-pickled-code unpickles it fully (it can run code:
only for files whose source you trust); the safetensors written needs no such trust afterwards.

    python tools/convert_checkpoint.py SRC DST [--arch PRESET|JSON|CONFIG.py] [--trust-pickled-code]

The architecture comes from SRC when it states one (our metadata, a config.json beside it, or, for a
checkpoint of one of our runs, the run's config that mmengine saves in it); --arch gives it otherwise:
a preset name, an arch dict as JSON, or a config file (its model.backbone.arch).
"""
import argparse
import json
import logging
import sys
from pathlib import Path

import internvl_mmlab  # noqa: F401  (the allowlist of mmengine's and DeepSpeed's checkpoint classes)
from internvl.apis import convert_checkpoint
from internvl.arch import ARCH_PRESETS
from internvl.checkpoint import CheckpointError
from internvl_mmlab.engine.release import convert_deepspeed_checkpoint, is_deepspeed_checkpoint


def arch_argument(value: str):
    """--arch: a preset name, an arch dict as JSON, or a config file whose model.backbone.arch is used."""
    if value in ARCH_PRESETS:
        return value
    if value.lstrip().startswith('{'):
        try:
            return json.loads(value)
        except json.JSONDecodeError as e:
            raise argparse.ArgumentTypeError(f'not a valid JSON arch dict ({e})') from None
    if value.endswith('.py') and Path(value).is_file():
        from mmengine.config import Config
        arch = Config.fromfile(value).get('model', {}).get('backbone', {}).get('arch')
        if arch is None:
            raise argparse.ArgumentTypeError(f'{value} has no model.backbone.arch')
        return arch.to_dict() if hasattr(arch, 'to_dict') else arch
    raise argparse.ArgumentTypeError(f'{value!r} is neither a preset ({", ".join(sorted(ARCH_PRESETS))}), '
                                     f'a JSON arch dict nor a config file')


def convert_released_segmentor(src: str, dst: str, trust_pickled_code: bool) -> bool:
    """An original release (a torch file holding a bare segmentor state dict) converted; False, nothing
    written, for any other source (only a .pth / .pt file is read, memory-mapped, to tell)."""
    if not src.endswith(('.pth', '.pt')) or not Path(src).is_file():
        return False
    from mmseg_custom import convert_original_release
    return convert_original_release(src, dst, trust_pickled_code)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='checkpoint file or directory, any supported format')
    parser.add_argument('dst', help='output file (.safetensors; .pth or .safetensors for a DeepSpeed release)')
    parser.add_argument('--arch', type=arch_argument,
                        help='preset name, JSON arch dict or config file (default: what SRC states, else inferred)')
    parser.add_argument('--trust-pickled-code', action='store_true',
                        help='unpickle SRC fully, with weights_only=False (only for a file you trust)')
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s')
    try:
        if is_deepspeed_checkpoint(args.src):
            convert_deepspeed_checkpoint(args.src, args.dst)
        elif not convert_released_segmentor(args.src, args.dst, args.trust_pickled_code):
            convert_checkpoint(args.src, args.dst, arch=args.arch, trust_pickled_code=args.trust_pickled_code)
    except (CheckpointError, FileNotFoundError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
