"""OpenMMLab glue shared by ``mmseg_custom`` and ``mmdet_custom``: the compatibility workarounds for
this stack (applied on import, before any runner is built), the optimizer constructors, hooks and the
training loops whose resume is exact."""
from internvl.utils.quiet import quiet_logger, silence_known_noise

silence_known_noise()  # before mmengine and DeepSpeed print their notices on import

from mmengine.logging import MMLogger  # noqa: E402

from . import compat, crash_safety  # noqa: E402

quiet_logger(MMLogger.get_instance('mmengine'), 'mmengine')
compat.apply()
crash_safety.install()

from .hooks import BroadcastBuffersHook  # noqa: E402
from .optim import LayerDecayOptimWrapperConstructor  # noqa: E402
from .resumable_loops import ResumableEpochBasedTrainLoop, ResumableIterBasedTrainLoop  # noqa: E402

__all__ = ['compat', 'BroadcastBuffersHook', 'LayerDecayOptimWrapperConstructor', 'ResumableEpochBasedTrainLoop',
           'ResumableIterBasedTrainLoop']
