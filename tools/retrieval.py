"""Image-text retrieval with InternVL-C or InternVL-G: recall@1/5/10 in both directions.

    python tools/retrieval.py MODEL IMAGES_DIR captions.jsonl [--mode InternVL-G]

captions.jsonl: one {"image": FILE_NAME, "caption": TEXT} per line; an image may have several
captions. Image -> text counts an image as found when any of its captions is in the top k.
"""
import argparse
import json
import sys
from pathlib import Path

from internvl.apis import (DTYPES, USER_ERRORS, add_runtime_arguments, check_images, check_model_folder,
                           check_runtime_arguments, encode_images, encode_texts, load_clip_model, retrieval_recall,
                           start_tool)
from internvl.apis.common import case_insensitive
from internvl.checkpoint import CheckpointError
from internvl.models.internvl_clip import MODES


def read_captions(path: str, images_dir: str) -> tuple[list[Path], list[str], list[int]]:
    """-> (image files in order of first mention, captions, image index of each caption)."""
    images, captions, owner = [], [], []
    index: dict[str, int] = {}
    lines = Path(path).read_text(encoding='utf-8').splitlines() if Path(path).is_file() else None
    if lines is None:
        raise FileNotFoundError(f'captions file not found: {path}')
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            name, caption = entry['image'], entry['caption']
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ValueError(f'{path}:{number}: expected {{"image": FILE_NAME, "caption": TEXT}}, got {line[:80]!r}')
        if name not in index:
            file = Path(images_dir) / name
            if not file.is_file():
                raise FileNotFoundError(f'{path}:{number}: image {file} not found')
            index[name] = len(images)
            images.append(file)
        captions.append(caption)
        owner.append(index[name])
    if not captions:
        raise ValueError(f'{path}: no captions')
    return images, captions, owner


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('model', help='InternVL-14B folder (InternVL-C/G)')
    parser.add_argument('images', help='folder of the images the captions name')
    parser.add_argument('captions', help='jsonl file of {"image": ..., "caption": ...}')
    parser.add_argument('--mode', type=case_insensitive(MODES), default='InternVL-C', help=' or '.join(MODES))
    add_runtime_arguments(parser)
    args = parser.parse_args()
    start_tool()
    try:
        check_model_folder(args.model, 'InternVL-C/G')
        check_runtime_arguments(args)
        images, captions, owner = read_captions(args.captions, args.images)
        check_images(images)
        model, tokenizer = load_clip_model(args.model, DTYPES[args.dtype], args.device)
        image_features = encode_images(model, images, args.mode, args.batch_size)
        text_features = encode_texts(model, tokenizer, captions).to(image_features.device)
    except (CheckpointError, *USER_ERRORS) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    recall = retrieval_recall(image_features.cpu(), text_features.cpu(), owner)
    print(f'{len(images)} images, {len(captions)} captions ({args.mode})')
    for direction in ('image_to_text', 'text_to_image'):
        print(f'{direction:<14} ' + '  '.join(f'R@{k} {recall[f"{direction}_R@{k}"]:6.2f}' for k in (1, 5, 10)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
