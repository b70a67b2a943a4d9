# DeepSpeed ZeRO-1 in fp16 with dynamic loss scaling, as the reference trained detection and the
# ViT-Adapter (fp16, not bf16: the GPU kernels of mmcv's RoIAlign and deformable attention take fp32
# and fp16). fp16 is for GPUs: DeepSpeed refuses it on the CPU.
_base_ = ['./deepspeed_zero1.py']
strategy = dict(fp16=dict(enabled=True, loss_scale=0, initial_scale_power=16), inputs_to_half=['inputs'])
