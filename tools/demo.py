"""The foundation demo: a checkpoint in a published layout -> our format -> InternViT features.

1. writes a small InternViT checkpoint in transformers' native InternVLVisionModel layout (random
   weights: no hub access here), 2. converts it with ``convert_checkpoint`` to this project's format,
3. loads it with ``InternViT.from_pretrained``, 4. runs one synthetic image, prints per-block feature
statistics and the largest difference from transformers' own forward, 5. writes the image beside a
PCA picture of the last block's features.

    python tools/demo.py --work-dir work_dirs/demo
"""
import argparse
import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from transformers import InternVLVisionConfig, InternVLVisionModel

from internvl import InternViT, convert_checkpoint
from internvl.utils.visualize import feature_pca_image, side_by_side

MEAN, STD = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])


def synthetic_image(size: int) -> Image.Image:
    image = Image.new('RGB', (size, size), (120, 170, 220))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, size * 2 // 3, size, size], fill=(90, 140, 60))
    draw.ellipse([size // 8, size // 8, size // 3, size // 3], fill=(250, 220, 80))
    draw.rectangle([size // 2, size // 3, size * 7 // 8, size * 3 // 4], fill=(180, 60, 50))
    draw.polygon([(size // 2, size // 3), (size * 11 // 16, size // 6), (size * 7 // 8, size // 3)],
                 fill=(100, 40, 30))
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--img', type=int, default=224)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    work_dir = Path(args.work_dir)
    torch.manual_seed(0)

    config = InternVLVisionConfig(hidden_size=192, num_hidden_layers=6, num_attention_heads=3,
                                  intermediate_size=768, use_qk_norm=True, norm_type='rms_norm',
                                  image_size=224, patch_size=14)
    reference = InternVLVisionModel(config).eval()
    hf_dir = work_dir / 'transformers_checkpoint'
    reference.save_pretrained(hf_dir)
    ours_path = work_dir / 'internvit_demo.safetensors'
    convert_checkpoint(hf_dir, ours_path)
    model = InternViT.from_pretrained(str(ours_path), out_indices=list(range(6))).eval()

    image = synthetic_image(args.img)
    pixels = (torch.from_numpy(np.asarray(image)).float() / 255 - MEAN) / STD
    pixels = pixels.permute(2, 0, 1)[None]
    with torch.no_grad():
        features = model(pixels)
        hidden = reference(pixels, output_hidden_states=True).hidden_states[1:]
    print(f'InternViT ({model.arch}) on a {args.img}x{args.img} image:')
    for i, (f, h) in enumerate(zip(features, hidden)):
        expected = h[:, 1:].transpose(1, 2).reshape(f.shape)
        print(f'  block {i}: {tuple(f.shape)}  mean {f.mean():+.3f}  std {f.std():.3f}  '
              f'max |ours - transformers| {(f - expected).abs().max():.2e}')
    picture = work_dir / 'features.png'
    side_by_side(image, feature_pca_image(features[-1][0], image.size)).save(picture)
    print(f'wrote {picture}')


if __name__ == '__main__':
    main()
