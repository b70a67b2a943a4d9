# DeepSpeed ZeRO-1 in fp16 with dynamic loss scaling, as the reference trained detection and the
# ViT-Adapter (fp16, not bf16: the CUDA kernels of mmcv's RoIAlign and deformable attention take fp32
# and fp16). DeepSpeed casts every parameter to fp16 (fp32 master copies in the sharded optimizer),
# the buffers too (`buffer_dtype`: BN statistics of the weights' dtype) and the images; the heads keep
# their box arithmetic in fp32 (internvl_mmlab/precision.py). The loss scale starts at 2**16 and is
# halved after overflowing steps (which are skipped); gradients are unscaled before clipping.
_base_ = ['./deepspeed_zero1.py']
strategy = dict(fp16=dict(enabled=True, loss_scale=0, initial_scale_power=16), inputs_to_half=['inputs'],
                config=dict(data_types=dict(buffer_dtype='fp16')))
