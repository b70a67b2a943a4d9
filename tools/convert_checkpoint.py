"""Convert a checkpoint:

- any InternViT checkpoint (OpenGVLab HF, transformers-native, timm-style .pth, InternVL-Chat /
  InternVL-14B, mmengine) -> one safetensors file in this project's format;
- a DeepSpeed checkpoint directory (work_dir/iter_N.pth/, any ZeRO stage, any number of ranks) -> one
  ordinary fp32 mmengine checkpoint (.pth) that tools/test.py and the plain Runner load.

    python tools/convert_checkpoint.py SRC DST [--arch internvit-6b-448px]
"""
import argparse
import logging
import sys

from internvl.checkpoint import CheckpointError, convert_checkpoint
from internvl.models import ARCH_PRESETS
from mmengine_custom.deepspeed import convert_deepspeed_checkpoint, is_deepspeed_checkpoint


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='checkpoint file or directory, any supported format')
    parser.add_argument('dst', help='output .safetensors file')
    parser.add_argument('--arch', choices=sorted(ARCH_PRESETS),
                        help='architecture preset (default: from config.json / metadata, else inferred)')
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s')
    try:
        if is_deepspeed_checkpoint(args.src):
            convert_deepspeed_checkpoint(args.src, args.dst)
        else:
            convert_checkpoint(args.src, args.dst, arch=args.arch)
    except (CheckpointError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
