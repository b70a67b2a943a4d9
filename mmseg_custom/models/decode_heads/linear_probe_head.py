"""Linear probe head of the InternViT segmentation protocol: BatchNorm + 1x1 conv on one tapped block.

With C = 3200 and 150 classes this is 0.5M parameters. ``norm_cfg`` defaults to SyncBN, which
mmengine's runner turns back into plain BN when training is not distributed; ``with_norm=False`` is the
plain 1x1 conv.

Two switches serve the probe sweep (``mmseg_custom.probing``), where many of these heads train on one
backbone pass: ``init_seed`` draws the head's initialisation from its own seed (the global generators
are restored after), so a probe starts from the same weights whatever else was built before it; and
``checkpoint_loss`` recomputes the full-resolution logits (the bilinear upsampling to the label size and
the cross-entropy on it) in the backward pass instead of keeping them: at 504 x 504 and 150 classes they
are 150 MB per image, for every probe. Both leave every number unchanged.
"""
from typing import Optional

from mmcv.cnn import build_norm_layer
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from internvl_mmlab.engine.loops import seeded


@MODELS.register_module()
class LinearProbeHead(BaseDecodeHead):
    """``in_channels`` = the tapped block's width; ``in_index`` picks it from the backbone's tuple."""

    def __init__(self, in_channels: int, norm_cfg: dict = dict(type='SyncBN', requires_grad=True),
                 with_norm: bool = True, init_seed: Optional[int] = None, checkpoint_loss: bool = False,
                 **kwargs) -> None:
        kwargs.setdefault('dropout_ratio', 0.0)
        super().__init__(in_channels=in_channels, channels=in_channels, norm_cfg=norm_cfg, **kwargs)
        self.bn = build_norm_layer(norm_cfg, in_channels)[1] if with_norm else nn.Identity()
        self.init_seed = init_seed
        self.checkpoint_loss = checkpoint_loss

    def init_weights(self) -> None:
        if self.init_seed is None:
            super().init_weights()
            return
        with seeded(self.init_seed):
            super().init_weights()

    def forward(self, inputs: tuple[Tensor, ...]) -> Tensor:
        # [B, C, H/p, W/p], made contiguous: the ViT hands over a strided view of its tokens, a feature cache
        # another one, and BN / conv kernels round differently on different layouts
        x = self._transform_inputs(inputs).contiguous()
        return self.cls_seg(self.bn(x))

    def loss_by_feat(self, seg_logits: Tensor, batch_data_samples: list) -> dict:
        if not (self.checkpoint_loss and seg_logits.requires_grad):
            return super().loss_by_feat(seg_logits, batch_data_samples)
        return checkpoint(super().loss_by_feat, seg_logits, batch_data_samples, use_reentrant=False)
