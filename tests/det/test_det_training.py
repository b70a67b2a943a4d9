"""Detection end to end on the embedded synthetic COCO-layout data (tools/train.py, tools/test.py with
mmdet's CocoMetric, tools/infer.py through mmdet's DetInferencer), and one training step of every COCO
and ViT-Adapter recipe shrunk to the CPU (tests/helpers/recipe_step.py)."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from recipe_runs import run_steps

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs' / 'det' / 'demo' / 'mask-rcnn_internvit-tiny_1xb4-12e_synthetic-coco-128x128.py'
RECIPES = sorted((REPO / 'configs' / 'det' / 'internvit').glob('*.py')) + sorted((REPO / 'configs' / 'vit_adapter').glob('*.py'))
# A detector that finds nothing scores 0 (test_predicting_nothing_scores_below_the_threshold); one
# that learned the four shapes scores far above this.
MIN_BBOX_AP = 0.3


def run(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def data_options(root: Path) -> list[str]:
    ann = f'{root}/annotations/instances_val2017.json'
    return [f'train_dataloader.dataset.data_root={root}/', f'val_dataloader.dataset.data_root={root}/',
            f'test_dataloader.dataset.data_root={root}/', f'val_evaluator.ann_file={ann}',
            f'test_evaluator.ann_file={ann}']


@pytest.fixture(scope='module')
def coco(tmp_path_factory):
    from mmdet_custom.datasets import write_synthetic_coco
    return write_synthetic_coco(tmp_path_factory.mktemp('det') / 'coco', num_train=200, num_val=50, size=128)


def test_synthetic_data_is_in_the_coco_layout(coco):
    from pycocotools.coco import COCO
    for split in ('train2017', 'val2017'):
        api = COCO(str(coco / 'annotations' / f'instances_{split}.json'))
        assert {c['name'] for c in api.loadCats(api.getCatIds())} == {'disc', 'square', 'triangle', 'cross'}
        for image in api.loadImgs(api.getImgIds()):
            assert (coco / split / image['file_name']).is_file()
            anns = api.loadAnns(api.getAnnIds(imgIds=image['id']))
            assert 1 <= len(anns) <= 5
            for ann in anns:
                assert ann['iscrowd'] == 0 and ann['area'] > 0 and all(len(p) >= 6 for p in ann['segmentation'])
                mask = api.annToMask(ann)
                assert mask.sum() == pytest.approx(ann['area'], rel=0.15)  # polygons rasterise to their area


def coco_bbox_ap(coco: Path, predictions: list[dict]) -> dict:
    from mmdet.evaluation import CocoMetric
    metric = CocoMetric(ann_file=str(coco / 'annotations' / 'instances_val2017.json'), metric=['bbox'])
    metric.dataset_meta = dict(classes=('disc', 'square', 'triangle', 'cross'))
    metric.process({}, predictions)
    return metric.evaluate(len(predictions))


def test_predicting_nothing_scores_below_the_threshold(coco):
    """The threshold means something: with mmdet's CocoMetric, a detector that finds nothing gets no AP
    at all, and one that boxes the whole image as every class scores far below it."""
    import torch
    images = json.loads((coco / 'annotations' / 'instances_val2017.json').read_text())['images']
    empty = dict(bboxes=torch.zeros(0, 4), scores=torch.zeros(0), labels=torch.zeros(0, dtype=torch.long))
    assert 'coco/bbox_mAP' not in coco_bbox_ap(coco, [dict(img_id=i['id'], ori_shape=(128, 128), pred_instances=empty)
                                                     for i in images])
    whole = dict(bboxes=torch.tensor([[0.0, 0.0, 128.0, 128.0]] * 4), scores=torch.ones(4), labels=torch.arange(4))
    ap = coco_bbox_ap(coco, [dict(img_id=i['id'], ori_shape=(128, 128), pred_instances=whole) for i in images])
    assert 0 <= ap['coco/bbox_mAP'] < MIN_BBOX_AP / 10


@pytest.mark.slow
def test_train_test_infer_learns_the_shapes(coco, tmp_path):
    work = tmp_path / 'work'
    run('tools/train.py', str(CONFIG), '--work-dir', str(work), '--cfg-options', *data_options(coco))
    checkpoint = work / 'epoch_12.pth'
    assert checkpoint.is_file()

    result = run('tools/test.py', str(CONFIG), str(checkpoint), '--work-dir', str(work / 'test'),
                 '--show-dir', str(tmp_path / 'show'), '--out', str(tmp_path / 'pred.pkl'),
                 '--cfg-options', *data_options(coco))
    bbox_ap = float(re.search(r'coco/bbox_mAP: ([\d.]+)', result.stdout).group(1))
    segm_ap = float(re.search(r'coco/segm_mAP: ([\d.]+)', result.stdout).group(1))
    assert bbox_ap > MIN_BBOX_AP and segm_ap > MIN_BBOX_AP, result.stdout[-2000:]
    assert len(list((tmp_path / 'show').rglob('*.jpg'))) == 50  # painted predictions beside the ground truth
    assert (tmp_path / 'pred.pkl').stat().st_size > 0

    picture = tmp_path / 'detections.png'
    image = coco / 'val2017' / '000000000001.jpg'
    result = run('tools/infer.py', str(image), str(CONFIG), str(checkpoint), '--out', str(picture), '--scale', '2',
                 '--gt', str(coco / 'annotations' / 'instances_val2017.json'))
    from PIL import Image
    width, height = Image.open(picture).size  # image | ground-truth boxes | detections, 256 px each, a legend
    assert width == 3 * 256 + 4 * 6 and height > 26 + 256
    found = re.search(r'(\d+) detections at score >= 0.3', result.stdout)
    assert found and int(found.group(1)) >= 1, result.stdout


@pytest.mark.slow
def test_every_coco_and_adapter_recipe_trains_and_validates_in_its_precision(tmp_path):
    """Each recipe as its strategy casts it on a GPU (DeepSpeed fp16 / bf16 autocast on fp32 weights):
    the ViT computes in the recipe's half dtype, the fp16 ones under DeepSpeed's dynamic loss scale, and
    every mmcv kernel whose CUDA and CPU twins take different dtypes gets one both take - nms and
    RoIAlign fp32 (their CPU kernels' only dtype; box arithmetic out of fp16), the deformable attention's
    values fp32 or fp16 (the CUDA kernel's dtypes; bf16 is upcast)."""
    from mmdet_custom.datasets import write_synthetic_coco
    from mmseg_custom.datasets import write_synthetic_ade
    write_synthetic_coco(tmp_path / 'data' / 'coco', num_train=4, num_val=2, size=64)
    write_synthetic_ade(tmp_path / 'data' / 'ade', num_train=4, num_val=2, size=112)
    steps = run_steps(tmp_path / 'data', tmp_path, [str(p) for p in RECIPES])
    assert sorted(steps) == sorted(p.stem for p in RECIPES)
    for path in RECIPES:
        step = steps[path.stem]
        half = 'bfloat16' if path.stem.endswith('-bf16') else 'float16'
        assert step.backbone_changed == ('-frozen' not in path.name), path.name
        assert step.dtypes['vit'] == {half}, (path.name, step.dtypes)
        assert (step.loss_scale is not None) == (half == 'float16'), path.name
        if path.name.startswith('mask-rcnn'):
            assert step.dtypes['nms'] == step.dtypes['roi_align'] == {'float32'}, (path.name, step.dtypes)
        if 'adapter' in path.name:
            assert step.dtypes['deform_attn'] <= {'float32', 'float16'}, (path.name, step.dtypes)
