"""mmdet 3's RPN, RoI extractor and RoI head with their box arithmetic in fp32 under any training
precision (``internvl_mmlab.precision``): the convolutions and fully connected layers compute in the
dtype of their weights (fp16 / bf16 under DeepSpeed's casts, autocast under AMP), while anchors, box
decoding, assignment, nms, RoIAlign and the losses see fp32 - what mmdet 2's ``force_fp32`` gave the
original recipes."""
import torch
from mmdet.models.dense_heads import RPNHead
from mmdet.models.roi_heads import SingleRoIExtractor, StandardRoIHead
from mmdet.registry import MODELS
from torch import Tensor

from internvl_mmlab.precision import to_fp32


@MODELS.register_module()
class FP32BoxRPNHead(RPNHead):
    """``RPNHead`` whose scores and deltas are cast to fp32 before anchors, decoding, nms and the losses
    (the anchors take the scores' dtype; mmcv's nms takes fp32 only)."""

    def loss_by_feat(self, cls_scores: list[Tensor], bbox_preds: list[Tensor], *args, **kwargs) -> dict:
        return super().loss_by_feat(to_fp32(cls_scores), to_fp32(bbox_preds), *args, **kwargs)

    def predict_by_feat(self, cls_scores: list[Tensor], bbox_preds: list[Tensor], *args, **kwargs) -> list:
        return super().predict_by_feat(to_fp32(cls_scores), to_fp32(bbox_preds), *args, **kwargs)


@MODELS.register_module()
class FP32RoIExtractor(SingleRoIExtractor):
    """``SingleRoIExtractor`` pooling in fp32 (mmcv's CPU RoIAlign takes fp32 only; boxes in fp16 are
    quantised to 1 px beyond 1024 px), the pooled features returned in the features' dtype."""

    def forward(self, feats: tuple[Tensor, ...], rois: Tensor, roi_scale_factor=None) -> Tensor:
        with torch.autocast(feats[0].device.type, enabled=False):
            pooled = super().forward(to_fp32(tuple(feats)), rois.float(), roi_scale_factor)
        return pooled.to(feats[0].dtype)


@MODELS.register_module()
class FP32BoxRoIHead(StandardRoIHead):
    """``StandardRoIHead`` whose box and mask heads' outputs are cast to fp32 before decoding, the
    losses and mask pasting."""

    def _bbox_forward(self, x: tuple[Tensor, ...], rois: Tensor) -> dict:
        results = super()._bbox_forward(x, rois)
        return dict(results, cls_score=to_fp32(results['cls_score']), bbox_pred=to_fp32(results['bbox_pred']))

    def _mask_forward(self, x: tuple[Tensor, ...], rois=None, pos_inds=None, bbox_feats=None) -> dict:
        results = super()._mask_forward(x, rois, pos_inds, bbox_feats)
        return dict(results, mask_preds=to_fp32(results['mask_preds']))
