# DeepSpeed ZeRO stage 1 (optimizer states sharded) through mmengine's FlexibleRunner (the runtimes'
# CrashSafeRunner builds it when a strategy is named; SafeDeepSpeedStrategy reads checkpoints without
# unpickling code and runs the checkpoint hooks), with the reference's settings (reduce bucket 5e8,
# overlap_comm, gradient clipping 1.0). The optimizer with its layer-decay groups comes from
# optim_wrapper (type DeepSpeedOptimWrapper) and reaches DeepSpeed as the client optimizer.
# Precision: fp32 optimizer; a leaf adds bf16 (see the *_ds-zero*-bf16 recipes) or keeps fp32 heads
# behind a bf16 backbone (backbone_dtype='bfloat16').
strategy = dict(
    type='SafeDeepSpeedStrategy',
    gradient_clipping=1.0,
    zero_optimization=dict(
        stage=1,
        allgather_partitions=True,
        allgather_bucket_size=5e8,
        reduce_scatter=True,
        reduce_bucket_size=5e8,
        overlap_comm=True,
        contiguous_gradients=True))
