"""mmdet's Mask R-CNN whose neck takes the backbone's features in its own dtype
(``cast_to_consumer``): a frozen ViT stored in fp16 or the adapter's fp32 outputs meet a neck of
another dtype under DeepSpeed's fp16 / bf16 (``internvl_mmlab.precision``)."""
from mmdet.models.detectors import MaskRCNN
from mmdet.registry import MODELS
from torch import Tensor

from internvl_mmlab.precision import cast_to_consumer


@MODELS.register_module()
class InternViTMaskRCNN(MaskRCNN):
    """``MaskRCNN`` with the features cast to the neck's dtype."""

    def extract_feat(self, batch_inputs: Tensor) -> tuple[Tensor, ...]:
        features = cast_to_consumer(self.backbone(batch_inputs), self.neck)
        return self.neck(features)
