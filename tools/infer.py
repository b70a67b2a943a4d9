"""Predict on one image and write a picture: the image | its ground truth (with --gt) | the prediction,
with a legend of the classes present - segmentation (mmseg config: the classes painted over the image)
or boxes, masks and labels (mmdet config, through mmdet's DetInferencer):
python tools/infer.py IMAGE CONFIG CHECKPOINT --out OUT.png [--gt LABELS.png | --gt instances.json]
    [--device cpu] [--opacity 0.5] [--score-thr 0.3] [--scale 1] [--cfg-options k=v ...] [--non-strict]
CHECKPOINT: a checkpoint file, a DeepSpeed checkpoint directory (released in memory) or one of
OpenGVLab's released segmentors (mapped onto the config's model; without its frozen ViT, that is read
from model.backbone.pretrained)."""
import argparse
import os
import sys

from mmengine.config import DictAction

import internvl_mmlab  # noqa: F401  (the engine and the workarounds)
from internvl.apis import check_device, check_images
from internvl.checkpoint import CheckpointError
from internvl.models.linear import set_cpu_linear_backend
from internvl_mmlab.cli import checkpoint_exists, config_task, load_config, verify_checkpoint


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('image')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out', required=True, help='output PNG: image | ground truth | prediction, with a legend')
    parser.add_argument('--gt', help='the ground truth: segmentation, the label-map PNG of IMAGE; detection, a COCO '
                                     'annotation file holding IMAGE')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--opacity', type=float, default=0.5, help='segmentation: opacity of the painted classes')
    parser.add_argument('--score-thr', type=float, default=0.3, help='detection: lowest score painted')
    parser.add_argument('--scale', type=int, default=1, help='enlarge the panels this many times (text keeps its size)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value (xxx=yyy format)')
    parser.add_argument('--non-strict', action='store_true',
                        help='load the checkpoint as mmengine does: missing / unexpected weights only warned about')
    args = parser.parse_args()
    set_cpu_linear_backend()  # the CPU inference back-end, as every tool chooses it (INTERNVL_CPU_LINEAR)
    if not checkpoint_exists(args.checkpoint):
        print(f'error: checkpoint not found: {args.checkpoint} (a file, or a DeepSpeed checkpoint directory)',
              file=sys.stderr)
        return 1
    try:
        check_images([args.image])
        check_device(args.device)
        if args.gt is not None and not os.path.isfile(args.gt):
            raise FileNotFoundError(f'--gt {args.gt}: no such file')
        cfg = load_config(args.config, cfg_options=args.cfg_options)
        task = config_task(cfg)
        backbone_from_pretrained = not args.non_strict and verify_checkpoint(cfg, args.checkpoint)
        if task == 'mmdet':
            from mmdet_custom.apis import paint_detections
            painted, summary = paint_detections(cfg, args.image, args.checkpoint, args.device, args.score_thr,
                                                annotation_file=args.gt, scale=args.scale)
        else:
            from mmseg_custom.apis import paint_segmentation
            painted, summary = paint_segmentation(cfg, args.image, args.checkpoint, args.device, args.opacity,
                                                  label_map=args.gt, scale=args.scale,
                                                  backbone_from_pretrained=backbone_from_pretrained)
    except (CheckpointError, FileNotFoundError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    from PIL import Image
    picture = Image.fromarray(painted)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    picture.save(args.out)
    print(f'wrote {args.out}; {summary}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
