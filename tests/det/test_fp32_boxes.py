"""Detection in half precision (internvl_mmlab/precision.py): with every parameter, buffer and input in
fp16 - as DeepSpeed's fp16 casts them - the demo Mask R-CNN trains and predicts on the CPU, and the box
arithmetic, nms and RoIAlign see fp32 (mmdet 3's own heads hand fp16 proposals to mmcv's float-only nms);
ViTDet's simple feature pyramid; the deformable attention's dtype per device."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import mmdet_custom  # noqa: F401
from internvl_mmlab.precision import deform_attn_dtype

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / 'configs' / 'det' / 'demo' / 'mask-rcnn_internvit-tiny_1xb4-12e_synthetic-coco-128x128.py'


def demo_detector():
    from mmdet.registry import MODELS
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):  # leaves the process's default scope as it was
        model = MODELS.build(Config.fromfile(str(DEMO)).model)
    model.init_weights()
    return model


def batch(size: int = 320, box: tuple = (10.0, 12.0, 300.0, 310.0)):
    """One image with one object of 290 x 298 px: its area overflows fp16 (max 65504)."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    from mmdet.structures.mask import BitmapMasks
    sample = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size),
                                         scale_factor=(1.0, 1.0), batch_input_shape=(size, size)))
    masks = torch.zeros(1, size, size, dtype=torch.uint8)
    x1, y1, x2, y2 = (int(v) for v in box)
    masks[0, y1:y2, x1:x2] = 1
    sample.gt_instances = InstanceData(bboxes=torch.tensor([box]), labels=torch.tensor([1]),
                                       masks=BitmapMasks(masks.numpy(), size, size))
    return torch.randn(1, 3, size, size), [sample]


def record_dtypes(monkeypatch):
    """The dtypes reaching mmcv's nms and RoIAlign and mmdet's IoU (the assigner's box arithmetic)."""
    import importlib
    from mmdet.models.task_modules.assigners import iou2d_calculator
    seen = {}

    def recording(name, fn):
        def wrapped(*args, **kwargs):
            seen.setdefault(name, set()).add(next(a for a in args if isinstance(a, torch.Tensor)).dtype)
            return fn(*args, **kwargs)
        return wrapped
    nms, roi_align = (importlib.import_module(f'mmcv.ops.{m}') for m in ('nms', 'roi_align'))
    monkeypatch.setattr(nms.NMSop, 'forward', staticmethod(recording('nms', nms.NMSop.forward)))
    monkeypatch.setattr(roi_align.RoIAlignFunction, 'forward',
                        staticmethod(recording('roi_align', roi_align.RoIAlignFunction.forward)))
    monkeypatch.setattr(iou2d_calculator, 'bbox_overlaps', recording('iou', iou2d_calculator.bbox_overlaps))
    return seen


def test_fp16_detector_trains_and_predicts_with_fp32_boxes(monkeypatch):
    seen = record_dtypes(monkeypatch)
    model = demo_detector().half()  # every parameter and buffer, as DeepSpeed's fp16 with buffer_dtype
    inputs, samples = batch()
    losses = model.loss(inputs.half(), samples)
    total = sum(v.sum() if isinstance(v, torch.Tensor) else sum(v) for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    assert model.backbone.vit.blocks[0].attn.qkv.weight.grad is not None
    model.eval()
    with torch.no_grad():
        predictions = model.predict(inputs.half(), samples)
    assert predictions[0].pred_instances.bboxes.dtype == torch.float32
    assert seen == {'nms': {torch.float32}, 'roi_align': {torch.float32}, 'iou': {torch.float32}}, seen


def test_large_boxes_are_assigned_in_fp32():
    """The object of 290 x 298 px is matched by the anchors that cover it: in fp16 its area is inf and
    no anchor is matched to it."""
    from mmdet.models.task_modules.assigners import MaxIoUAssigner
    from mmengine.structures import InstanceData
    gt = InstanceData(bboxes=torch.tensor([[10.0, 12.0, 300.0, 310.0]]), labels=torch.tensor([1]))
    priors = InstanceData(priors=torch.tensor([[0.0, 0.0, 320.0, 320.0], [20.0, 20.0, 290.0, 300.0]]))
    with DefaultScope.overwrite_default_scope('mmdet'):
        assigner = MaxIoUAssigner(pos_iou_thr=0.7, neg_iou_thr=0.3)
    assert assigner.assign(priors, gt).gt_inds.tolist() == [1, 1]
    half = InstanceData(priors=priors.priors.half())
    assert not (assigner.assign(half, InstanceData(bboxes=gt.bboxes.half(), labels=gt.labels)).gt_inds > 0).any()


def test_simple_feature_pyramid_levels_and_parameters():
    """detectron2's SimpleFeaturePyramid: strides 4 / 8 / 16 / 32 / 64 from one stride-16 map, channels
    C/4 and C/2 on the way up, then 1x1 + 3x3 convs (no bias) with LayerNorms to 256."""
    from internvl.models import SimpleFeaturePyramid
    C, out = 64, 32
    neck = SimpleFeaturePyramid(C, out)
    maps = neck((torch.randn(2, C, 8, 12),))
    assert [tuple(m.shape) for m in maps] == [(2, out, 8 * 16 // s, 12 * 16 // s) for s in (4, 8, 16, 32, 64)]
    convt = lambda i, o: i * o * 4 + o  # noqa: E731
    head = lambda i: i * out + 2 * out + out * out * 9 + 2 * out  # noqa: E731
    expected = (convt(C, C // 2) + 2 * (C // 2) + convt(C // 2, C // 4) + head(C // 4)
                + convt(C, C // 2) + head(C // 2) + head(C) + head(C))
    assert sum(p.numel() for p in neck.parameters()) == expected


@pytest.mark.parametrize('device, dtype, expected', [
    ('cuda', torch.float16, torch.float16), ('cuda', torch.float32, torch.float32),
    ('cuda', torch.bfloat16, torch.float32), ('cpu', torch.bfloat16, torch.bfloat16),
    ('cpu', torch.float16, torch.float16),
])
def test_deformable_attention_runs_in_a_dtype_its_kernel_takes(device, dtype, expected):
    """mmcv's CUDA kernel dispatches fp32 and fp16 (bf16 runs on an fp32 upcast); its CPU path any."""
    assert deform_attn_dtype(dtype, torch.device(device)) == expected
