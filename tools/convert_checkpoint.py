"""Convert any InternViT checkpoint (OpenGVLab HF, transformers-native, timm-style .pth, InternVL-Chat /
InternVL-14B, mmengine) into one safetensors file in this project's format.

    python tools/convert_checkpoint.py SRC DST [--arch internvit-6b-448px]
"""
import argparse
import logging
import sys

from internvl.checkpoint import CheckpointError, convert_checkpoint
from internvl.models import ARCH_PRESETS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='checkpoint file or directory, any supported format')
    parser.add_argument('dst', help='output .safetensors file')
    parser.add_argument('--arch', choices=sorted(ARCH_PRESETS),
                        help='architecture preset (default: from config.json / metadata, else inferred)')
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s')
    try:
        convert_checkpoint(args.src, args.dst, arch=args.arch)
    except (CheckpointError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
