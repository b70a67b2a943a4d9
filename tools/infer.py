"""Segment one image and write the predicted overlay:
python tools/infer.py IMAGE CONFIG CHECKPOINT --out OUT.png [--device cpu] [--opacity 0.5] [--scale 1]
    [--cfg-options k=v ...] [--non-strict]"""
import argparse
import os
import sys

import mmengine_custom  # noqa: F401  (compatibility workarounds)
from internvl.checkpoint import CheckpointError
from mmengine.config import DictAction
from mmengine_custom.runner import load_config, verify_checkpoint


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('image')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out', required=True, help='output PNG: the image with the prediction painted over it')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--opacity', type=float, default=0.5)
    parser.add_argument('--scale', type=int, default=1, help='enlarge the written picture this many times')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value (xxx=yyy format)')
    parser.add_argument('--non-strict', action='store_true',
                        help='load the checkpoint as mmengine does: missing / unexpected weights only warned about')
    args = parser.parse_args()
    for path in (args.image, args.config, args.checkpoint):
        if not os.path.isfile(path):
            print(f'error: not found: {path}', file=sys.stderr)
            return 1
    try:
        cfg = load_config(args.config, cfg_options=args.cfg_options)
        if not args.non_strict:
            verify_checkpoint(cfg, args.checkpoint)
    except CheckpointError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    from mmseg.apis import inference_model, init_model, show_result_pyplot
    model = init_model(cfg, args.checkpoint, device=args.device)
    result = inference_model(model, args.image)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    show_result_pyplot(model, args.image, result, opacity=args.opacity, draw_gt=False, show=False,
                       out_file=args.out)
    if args.scale > 1:
        from PIL import Image
        picture = Image.open(args.out)
        picture.resize((picture.width * args.scale, picture.height * args.scale), Image.NEAREST).save(args.out)
    classes = model.dataset_meta['classes']
    present = result.pred_sem_seg.data.unique().tolist()
    print(f'wrote {args.out}; predicted classes: {[classes[i] for i in present]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
