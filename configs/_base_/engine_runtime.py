# The engine of every config (internvl_mmlab.engine), inherited by seg_runtime.py and det_runtime.py:
# checkpoints written atomically (a killed run resumes from the last complete one; mmengine's
# FlexibleRunner when a strategy is named), DDP that also runs on the CPU, a NaN loss stopping training
# before it is saved, a resumed run continuing the RNG streams, and DeepSpeed's ranks sharing rank 0's
# BatchNorm statistics (a no-op without DeepSpeed).
runner_type = 'CrashSafeRunner'
model_wrapper_cfg = dict(type='CPUCompatibleDistributedDataParallel', broadcast_buffers=False,
                         find_unused_parameters=False)
custom_hooks = [dict(type='StopOnNonFiniteLossHook'), dict(type='ResumeRNGHook'), dict(type='BroadcastBuffersHook')]
