"""bbox mAP from scratch of each detection neck on the synthetic COCO-layout data, same schedule, side by
side in one run: the tiny InternViT of the detection demo, 400 iterations (8 epochs of 200 images,
batch 4), mmdet's default RoI levels (finest_scale 56), evaluated with mmdet's CocoMetric:

- ViTDet's simple feature pyramid (``SimpleFeaturePyramid``: the demo's and the ``-sfp`` recipes' neck);
- the published recipe's neck: the simple FPN in the backbone (``with_fpn=True``) + mmdet's FPN.

    python tools/analysis/benchmark_detection_necks.py [--work-dir work_dirs/benchmark_necks] [--out docs/benchmark_detection_necks.txt]
"""
import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs' / 'demo' / 'mask-rcnn_internvit-tiny_1xb4-12e_synthetic-coco-128x128.py'
EPOCHS = 8
NECKS = {
    "ViTDet's SimpleFeaturePyramid": [],
    'published: simple FPN + mmdet FPN': ['model.backbone.with_fpn=True', 'model.neck.type=FPN',
                                          'model.neck.in_channels=[96,96,96,96]'],
}


def run(*args: str) -> str:
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO)
    if result.returncode:
        raise SystemExit(result.stdout[-2000:] + result.stderr[-2000:])
    return result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-dir', default='work_dirs/benchmark_necks')
    parser.add_argument('--out', default='docs/benchmark_detection_necks.txt')
    args = parser.parse_args()
    root = Path(args.work_dir).resolve()
    data = root / 'coco'
    if not data.is_dir():
        from mmdet_custom.datasets import write_synthetic_coco
        write_synthetic_coco(data)
    ann = f'{data}/annotations/instances_val2017.json'
    common = [f'{split}_dataloader.dataset.data_root={data}/' for split in ('train', 'val', 'test')]
    common += [f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}', f'train_cfg.max_epochs={EPOCHS}',
               f'train_cfg.val_interval={EPOCHS}', f'default_hooks.checkpoint.interval={EPOCHS}',
               f'param_scheduler.1.end={EPOCHS}', f'param_scheduler.1.milestones=[{EPOCHS - 2},{EPOCHS - 1}]']
    rows = []
    for name, options in NECKS.items():
        work = root / re.sub(r'\W+', '_', name).strip('_')
        print(f'training: {name} ...', flush=True)
        run('tools/train.py', str(CONFIG), '--work-dir', str(work), '--cfg-options', *common, *options)
        out = run('tools/test.py', str(CONFIG), str(work / f'epoch_{EPOCHS}.pth'), '--work-dir', str(work / 'test'),
                  '--cfg-options', *common, *options)
        bbox = float(re.search(r'coco/bbox_mAP: ([\d.]+)', out).group(1))
        segm = float(re.search(r'coco/segm_mAP: ([\d.]+)', out).group(1))
        rows.append(f'| {name} | {bbox:.3f} | {segm:.3f} |')
    table = '\n'.join([f'# {Path(__file__).name}: tiny InternViT Mask R-CNN from scratch, {EPOCHS} epochs x 50 '
                       f'iterations (batch 4) on the synthetic COCO-layout data, finest_scale 56, this CPU '
                       f'({os.cpu_count()} cores)', '| neck | bbox mAP | segm mAP |', '|---|---|---|', *rows])
    print(table)
    Path(args.out).write_text(table + '\n')


if __name__ == '__main__':
    main()
