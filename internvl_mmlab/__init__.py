"""The OpenMMLab layer shared by ``mmseg_custom`` and ``mmdet_custom``: the core's InternViT and the
ViT-Adapter as OpenMMLab models (``models``), the training machinery our ``_base_`` configs name
(``engine``: runners, strategies, optimizer wrappers, hooks, loops), the tools' shared defaults
(``cli``) and the task-independent half of the analysis tools (``analysis``). It imports mmengine and
mmcv, never mmseg, mmdet or the task packages.

Importing it registers everything in mmengine's root registries (searched by mmseg's and mmdet's
scoped ones) and the safe checkpoint loader with mmengine's ``CheckpointLoader``, and applies the few
workarounds with no extension point (``compat``, version-gated)."""
from internvl.utils.quiet import quiet_logger, silence_known_noise

silence_known_noise()  # before mmengine and DeepSpeed print their notices on import

from mmengine.logging import MMLogger  # noqa: E402

from . import compat  # noqa: E402

quiet_logger(MMLogger.get_instance('mmengine'), 'mmengine')
compat.apply()

from .engine import (BroadcastBuffersHook, CPUCompatibleDistributedDataParallel, CrashSafeFlexibleRunner,  # noqa: E402
                     CrashSafeRunner, LayerDecayOptimWrapperConstructor, PortableAmpOptimWrapper, QuietSetupRunner,
                     ResumableEpochBasedTrainLoop, ResumableFSDPStrategy, ResumableIterBasedTrainLoop, ResumeRNGHook,
                     SafeDeepSpeedStrategy, StopOnNonFiniteLossHook)
from .engine.checkpoint import register_safe_loading  # noqa: E402
from .models import InternViTAdapter, InternViTBackbone  # noqa: E402

register_safe_loading()

__all__ = ['BroadcastBuffersHook', 'CPUCompatibleDistributedDataParallel', 'CrashSafeFlexibleRunner', 'CrashSafeRunner',
           'InternViTAdapter', 'InternViTBackbone', 'LayerDecayOptimWrapperConstructor', 'PortableAmpOptimWrapper',
           'QuietSetupRunner', 'ResumableEpochBasedTrainLoop', 'ResumableFSDPStrategy', 'ResumableIterBasedTrainLoop',
           'ResumeRNGHook', 'SafeDeepSpeedStrategy', 'StopOnNonFiniteLossHook', 'compat']
