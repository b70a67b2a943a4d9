"""The training machinery the ``_base_`` configs name, each a registered subclass of mmengine's own:
runners with atomic checkpoints (``runners``), DeepSpeed and FSDP strategies (``strategies``), the
layer-decay constructor and the CPU-capable AMP wrapper (``optim``), DDP on the CPU (``wrappers``),
hooks (``hooks``), loops whose resume is exact (``loops``); checkpoint reading and choosing what to
resume (``checkpoint``), and the DeepSpeed release (``release``)."""
from .hooks import BroadcastBuffersHook, ResumeRNGHook, StopOnNonFiniteLossHook
from .loops import ResumableEpochBasedTrainLoop, ResumableIterBasedTrainLoop
from .optim import LayerDecayOptimWrapperConstructor, PortableAmpOptimWrapper
from .runners import CrashSafeFlexibleRunner, CrashSafeRunner, QuietSetupRunner
from .strategies import ResumableFSDPStrategy, SafeDeepSpeedStrategy
from .wrappers import CPUCompatibleDistributedDataParallel

__all__ = ['BroadcastBuffersHook', 'CPUCompatibleDistributedDataParallel', 'CrashSafeFlexibleRunner', 'CrashSafeRunner',
           'LayerDecayOptimWrapperConstructor', 'PortableAmpOptimWrapper', 'QuietSetupRunner',
           'ResumableEpochBasedTrainLoop', 'ResumableFSDPStrategy', 'ResumableIterBasedTrainLoop', 'ResumeRNGHook',
           'SafeDeepSpeedStrategy', 'StopOnNonFiniteLossHook']
