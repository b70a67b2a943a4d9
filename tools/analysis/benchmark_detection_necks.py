"""bbox mAP from scratch of each detection neck on the synthetic COCO-layout data, same schedule, side by
side in one run: the tiny InternViT of the detection demo, 400 iterations (8 epochs of 200 images,
batch 4), mmdet's default RoI levels (finest_scale 56: the demo's 20-50 px objects pool from stride 4),
evaluated with mmdet's CocoMetric:

- the published recipe's neck (the simple FPN in the backbone, ``with_fpn=True``, + mmdet's FPN) with
  its LayerNorm (as published) and with BatchNorm (``fpn_norm='BN'``, the demo);
- ViTDet's simple feature pyramid (``SimpleFeaturePyramid``, the ``-sfp`` recipes' neck), LN and BN;
- mmseg's ``MultiLevelNeck`` (bilinear re-scaling of the last block, 1x1 and 3x3 convs, no norm).

    python tools/analysis/benchmark_detection_necks.py [--work-dir work_dirs/benchmark_necks]
        [--out docs/benchmark_detection_necks.txt]
"""
import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / 'configs' / 'det' / 'demo'
PUBLISHED = DEMO / 'mask-rcnn_internvit-tiny_1xb4-12e_synthetic-coco-128x128.py'
SFP = DEMO / 'mask-rcnn_internvit-tiny-sfp_1xb4-12e_synthetic-coco-128x128.py'
EPOCHS = 8
# mmseg's MultiLevelNeck behind the demo's ViT: written beside the runs, a variant of the demo config
MULTI_LEVEL_NECK = f"""_base_ = ['{PUBLISHED}']
model = dict(backbone=dict(with_fpn=False),
             neck=dict(_delete_=True, type='mmseg.MultiLevelNeck', in_channels=[96], out_channels=64,
                       scales=[4, 2, 1, 0.5, 0.25]))
"""
NECKS = {  # name -> (config file or text, options)
    'published: simple FPN (LayerNorm) + mmdet FPN': (PUBLISHED, ["model.backbone.fpn_norm='LN'"]),
    'published structure, BatchNorm in the simple FPN (the demo)': (PUBLISHED, []),
    "ViTDet's SimpleFeaturePyramid (LayerNorm)": (SFP, ["model.neck.norm='LN'"]),
    "ViTDet's SimpleFeaturePyramid, BatchNorm": (SFP, []),
    "mmseg's MultiLevelNeck (no norm)": (MULTI_LEVEL_NECK, []),
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
    for name, (config, options) in NECKS.items():
        work = root / re.sub(r'\W+', '_', name).strip('_')
        if isinstance(config, str):  # a config's text
            work.mkdir(parents=True, exist_ok=True)
            (work / 'neck.py').write_text(config)
            config = work / 'neck.py'
        print(f'training: {name} ...', flush=True)
        run('tools/train.py', str(config), '--work-dir', str(work), '--cfg-options', *common, *options)
        out = run('tools/test.py', str(config), str(work / f'epoch_{EPOCHS}.pth'), '--work-dir', str(work / 'test'),
                  '--cfg-options', *common, *options)
        bbox = float(re.search(r'coco/bbox_mAP: ([\d.]+)', out).group(1))
        segm = float(re.search(r'coco/segm_mAP: ([\d.]+)', out).group(1))
        rows.append(f'| {name} | {bbox:.3f} | {segm:.3f} |')
    table = '\n'.join([f'# {Path(__file__).name}: tiny InternViT Mask R-CNN from scratch, {EPOCHS} epochs x 50 '
                       f'iterations (batch 4) on the synthetic COCO-layout data, mmdet\'s default RoI levels '
                       f'(finest_scale 56), this CPU ({os.cpu_count()} cores)',
                       '| neck | bbox mAP | segm mAP |', '|---|---|---|', *rows])
    print(table)
    Path(args.out).write_text(table + '\n')


if __name__ == '__main__':
    main()
