"""Zero-shot image classification with InternVL-C or InternVL-G (an InternVL-14B folder).

    python tools/zero_shot.py MODEL IMAGES_DIR --classes classes.txt [--templates templates.txt]
        [--mode InternVL-G] [--topk 5] [--labels labels.txt] [--out predictions.csv]

classes.txt: one class name per line. templates.txt: one prompt per line with {} for the class name
(default 'a photo of a {}.'); class features are the normalised mean over the templates. labels.txt:
lines 'FILE_NAME<TAB>CLASS_NAME'; with it, top-1 and top-k accuracy are printed. --out: the top-k
classes and probabilities of every image as CSV. Every image file is checked (its header) before the
weights load; the unreadable ones are named.
"""
import argparse
import csv
import io
import sys
from pathlib import Path

from internvl.apis import (DTYPES, USER_ERRORS, add_runtime_arguments, check_at_least, check_images,
                           check_model_folder, check_runtime_arguments, class_embeddings, encode_images, list_images,
                           load_clip_model, read_lines, start_tool, zero_shot_predict)
from internvl.apis.common import case_insensitive
from internvl.checkpoint import write_atomic
from internvl.apis.zero_shot import DEFAULT_TEMPLATES
from internvl.checkpoint import CheckpointError
from internvl.models.internvl_clip import MODES


def read_labels(path: str, classes: list[str]) -> dict[str, int]:
    labels = {}
    for number, line in enumerate(read_lines(path, 'labels'), 1):
        name, _, label = line.partition('\t')
        if label not in classes:
            raise ValueError(f'{path}:{number}: class {label!r} is not in the class list (line: {line!r}; '
                             f'expected FILE_NAME<TAB>CLASS_NAME)')
        labels[name] = classes.index(label)
    return labels


def print_table(rows: list[tuple[str, list[tuple[str, float]]]]) -> None:
    """One line per image, its top-k classes with probabilities, in aligned columns."""
    cells = [[name] + [f'{c} ({p:.3f})' for c, p in top] for name, top in rows]
    header = ['image'] + [f'top-{i + 1}' for i in range(len(rows[0][1]))]
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(len(header))]
    for row in [header, *cells]:
        print('  '.join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def predictions_csv(rows: list[tuple[str, list[tuple[str, float]]]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    k = len(rows[0][1])
    writer.writerow(['image'] + [f'top{i + 1}_{col}' for i in range(k) for col in ('class', 'prob')])
    for name, top in rows:
        writer.writerow([name] + [v for c, p in top for v in (c, f'{p:.6f}')])
    return out.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('model', help='InternVL-14B folder (InternVL-C/G)')
    parser.add_argument('images', help='folder of images')
    parser.add_argument('--classes', required=True, help='text file, one class name per line')
    parser.add_argument('--templates', help='text file, one prompt per line with {} (default: a photo of a {}.)')
    parser.add_argument('--labels', help='text file of FILE_NAME<TAB>CLASS_NAME lines, to report accuracy')
    parser.add_argument('--mode', type=case_insensitive(MODES), default='InternVL-C', help=' or '.join(MODES))
    parser.add_argument('--topk', type=int, default=5)
    parser.add_argument('--out', help='write the top-k predictions of every image to this CSV file')
    add_runtime_arguments(parser)
    args = parser.parse_args()
    start_tool()
    try:
        check_model_folder(args.model, 'InternVL-C/G')
        check_runtime_arguments(args)
        check_at_least('--topk', args.topk)
        classes = read_lines(args.classes, 'class names')
        templates = read_lines(args.templates, 'templates') if args.templates else list(DEFAULT_TEMPLATES)
        images = list_images(args.images)
        check_images(images)
        labels = read_labels(args.labels, classes) if args.labels else None
        model, tokenizer = load_clip_model(args.model, DTYPES[args.dtype], args.device)
        image_features = encode_images(model, images, args.mode, args.batch_size)
        class_features = class_embeddings(model, tokenizer, classes, templates).to(image_features.device)
        probs, top = zero_shot_predict(image_features, class_features, model.logit_scale, args.topk)
    except (CheckpointError, *USER_ERRORS) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    rows = [(path.name, [(classes[c], p[c].item()) for c in row]) for path, row, p in zip(images, top.tolist(), probs)]
    print_table(rows)
    if args.out:
        text = predictions_csv(rows)
        write_atomic(args.out, lambda tmp: Path(tmp).write_text(text, newline=''))
        print(f'wrote {args.out}')
    if labels is not None:
        known = [(i, labels[p.name]) for i, p in enumerate(images) if p.name in labels]
        if not known:
            print(f'error: no image of {args.images} is listed in {args.labels}', file=sys.stderr)
            return 1
        top1 = sum(top[i, 0].item() == y for i, y in known) / len(known)
        topk = sum(y in top[i].tolist() for i, y in known) / len(known)
        print(f'accuracy on {len(known)} labelled images ({args.mode}): top-1 {100 * top1:.2f}%, '
              f'top-{top.shape[1]} {100 * topk:.2f}%')
    return 0


if __name__ == '__main__':
    sys.exit(main())
