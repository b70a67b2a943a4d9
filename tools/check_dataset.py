"""Validate the datasets of a config before a long run: counts, classes present, bad files.

    python tools/check_dataset.py CONFIG [--split train val] [--cfg-options k=v ...]

Reads every image and label map (segmentation) or the COCO json and every image (detection); writes
nothing. Exits 1 when a file is missing, unreadable or truncated, a label is outside the class range,
or a COCO box lies outside its image / has a negative area (each named, with what is wrong).
"""
import argparse
import sys

from mmengine.config import DictAction

from internvl_mmlab.analysis.data_check import DatasetCheck, check_config
from internvl_mmlab.cli import check_data_roots, config_task, load_config


def dataset_check(task: str) -> DatasetCheck:
    """The check of one dataset of ``task`` ('mmseg' or 'mmdet')."""
    if task == 'mmseg':
        from mmseg_custom.analysis import check_segmentation
        return check_segmentation
    from mmdet_custom.analysis import check_coco_dataset
    return check_coco_dataset


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('--split', nargs='+', choices=['train', 'val', 'test'], default=['train', 'val', 'test'])
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override settings of the config')
    args = parser.parse_args()
    try:
        cfg = load_config(args.config, cfg_options=args.cfg_options)
        check_data_roots(cfg, tuple(f'{s}_dataloader' for s in args.split))
        blocks, bad = check_config(cfg, dataset_check(config_task(cfg)), tuple(args.split))
    except (FileNotFoundError, ValueError, KeyError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print('\n'.join(blocks))
    print(f'{bad} problems found' if bad else 'no problems found')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
