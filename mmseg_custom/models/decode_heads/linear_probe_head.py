"""Linear probe head of the InternViT segmentation protocol: BatchNorm + 1x1 conv on one tapped block.

With C = 3200 and 150 classes this is 0.5M parameters. ``norm_cfg`` defaults to SyncBN, which
mmengine's runner turns back into plain BN when training is not distributed.
"""
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from mmcv.cnn import build_norm_layer
from torch import Tensor


@MODELS.register_module()
class LinearProbeHead(BaseDecodeHead):
    """``in_channels`` = the tapped block's width; ``in_index`` picks it from the backbone's tuple."""

    def __init__(self, in_channels: int, norm_cfg: dict = dict(type='SyncBN', requires_grad=True),
                 **kwargs) -> None:
        kwargs.setdefault('dropout_ratio', 0.0)
        super().__init__(in_channels=in_channels, channels=in_channels, norm_cfg=norm_cfg, **kwargs)
        self.bn = build_norm_layer(norm_cfg, in_channels)[1]

    def forward(self, inputs: tuple[Tensor, ...]) -> Tensor:
        x = self._transform_inputs(inputs)  # [B, C, H/p, W/p]
        return self.cls_seg(self.bn(x))
