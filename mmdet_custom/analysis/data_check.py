"""The detection side of ``tools/check_dataset.py``: one COCO dataset checked, from its json read
directly (mmdet's loader drops bad boxes silently).

Each image file must exist and decode, each box ``[x, y, w, h]`` must have w, h > 0 and lie inside its
image (0.5 pixel of slack), each area must be non-negative and each category id declared.
"""
import json
import os.path as osp

from tqdm import tqdm

from internvl_mmlab.analysis.data_check import DatasetReport, read_image

SLACK = 0.5


def check_coco_dataset(dataset_cfg: dict, name: str) -> tuple[DatasetReport, tuple]:
    """``check_coco`` on the annotation file and image folder of an mmdet dataset config."""
    root = dataset_cfg.get('data_root') or ''
    img_dir = osp.join(root, (dataset_cfg.get('data_prefix') or {}).get('img', ''))
    return check_coco(osp.join(root, dataset_cfg['ann_file']), img_dir, name)


def check_coco(ann_file: str, img_dir: str, name: str) -> tuple[DatasetReport, tuple]:
    try:
        with open(ann_file) as f:
            coco = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f'{ann_file}: not a readable COCO json ({e})') from None
    categories = {c['id']: c['name'] for c in coco.get('categories', [])}
    images = {im['id']: im for im in coco.get('images', [])}
    report = DatasetReport(name)
    for image in tqdm(images.values(), desc=f'checking {name}', unit='image'):
        report.samples += 1
        path = osp.join(img_dir, image['file_name'])
        pixels, error = read_image(path)
        if error:
            report.problems.append(f'{path}: {error}')
        elif pixels.shape[:2] != (image['height'], image['width']):
            report.problems.append(f'{path}: {pixels.shape[1]}x{pixels.shape[0]}, the json says '
                                   f'{image["width"]}x{image["height"]}')
    for ann in coco.get('annotations', []):
        where = f'{ann_file}: annotation {ann.get("id")}'
        image = images.get(ann.get('image_id'))
        if image is None:
            report.problems.append(f'{where}: image_id {ann.get("image_id")} is not in "images"')
            continue
        x, y, w, h = ann['bbox']
        if w <= 0 or h <= 0:
            report.problems.append(f'{where} ({image["file_name"]}): box {ann["bbox"]} has no width or height')
        elif x < -SLACK or y < -SLACK or x + w > image['width'] + SLACK or y + h > image['height'] + SLACK:
            report.problems.append(f'{where} ({image["file_name"]}): box {ann["bbox"]} lies outside the '
                                   f'{image["width"]}x{image["height"]} image')
        if ann.get('area', 0) < 0:
            report.problems.append(f'{where} ({image["file_name"]}): negative area {ann["area"]}')
        if ann.get('category_id') not in categories:
            report.problems.append(f'{where}: category_id {ann.get("category_id")} is not declared')
        else:
            report.classes[categories[ann['category_id']]] += 1
    return report, tuple(categories.values())
