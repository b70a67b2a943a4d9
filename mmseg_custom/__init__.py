"""The segmentation layer: our segmentor, TTA model, heads, metric and datasets in mmsegmentation 1.x's registries (the
backbones are the OpenMMLab layer's, ``internvl_mmlab.models``, registered once for both tasks), and
the segmentation side of the analysis tools (``analysis``), probing studies (``probing``); OpenGVLab's released segmentors load as
ours (``released``). Import via
``custom_imports = dict(imports=['mmseg_custom'], allow_failed_imports=False)``."""
import internvl_mmlab  # noqa: F401  (the backbones, engine and workarounds, registered before any runner)
from internvl_mmlab.engine.checkpoint import register_checkpoint_adapter
from internvl_mmlab.models import InternViTAdapter, InternViTBackbone

from .evaluation import PerClassIoUMetric
from .models import BatchedSegTTAModel, BatchedSlideEncoderDecoder, LinearProbeHead
from .probing import ProbeSweepHead, ProbeSweepIoUMetric, ProbeSweepSegmentor
from .released import adapt_original_release, convert_original_release

register_checkpoint_adapter(adapt_original_release)  # OpenGVLab's released segmentors load wherever ours do

__all__ = ['BatchedSegTTAModel', 'BatchedSlideEncoderDecoder', 'InternViTAdapter', 'InternViTBackbone',
           'LinearProbeHead', 'PerClassIoUMetric', 'ProbeSweepHead', 'ProbeSweepIoUMetric', 'ProbeSweepSegmentor',
           'convert_original_release']
