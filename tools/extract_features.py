"""Extract pooled or dense InternViT features of a folder of images.

    python tools/extract_features.py MODEL IMAGES_DIR OUT.npy|OUT.safetensors [--kind dense]

MODEL: any InternViT checkpoint (file or folder, any published layout, a chat folder's vision tower)
or an InternVL-14B folder. pooled [N, D]: the InternVL-C embedding for InternVL-14B, else the mean of
the last block's patch tokens; dense [N, C, h, w]: the last block's patch-token map. Images are
resized to the ViT's pretraining size. The output is written atomically (.npy with OUT.npy.names.txt,
or .safetensors with the image names in its metadata).
"""
import argparse
import sys

import internvl_mmlab  # noqa: F401  (the allowlist of mmengine's and DeepSpeed's checkpoint classes)
from internvl.apis import (DTYPES, USER_ERRORS, add_runtime_arguments, check_images, check_runtime_arguments,
                           extract_features, list_images, save_features, start_tool)
from internvl.apis.features import KINDS
from internvl.checkpoint import CheckpointError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('model', help='InternViT checkpoint or InternVL folder')
    parser.add_argument('images', help='folder of images')
    parser.add_argument('out', help='output .npy or .safetensors file')
    parser.add_argument('--kind', choices=KINDS, default='pooled')
    add_runtime_arguments(parser)
    args = parser.parse_args()
    start_tool()
    try:
        if not args.out.endswith(('.npy', '.safetensors')):
            raise ValueError(f'{args.out}: expected a .npy or .safetensors output file')
        check_runtime_arguments(args)
        images = list_images(args.images)
        check_images(images)
        features = extract_features(args.model, images, args.kind, args.batch_size, args.device, DTYPES[args.dtype])
        save_features(features, [p.name for p in images], args.out)
    except (CheckpointError, *USER_ERRORS) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(f'{args.out}: {args.kind} features {tuple(features.shape)} of {len(images)} images')
    return 0


if __name__ == '__main__':
    sys.exit(main())
