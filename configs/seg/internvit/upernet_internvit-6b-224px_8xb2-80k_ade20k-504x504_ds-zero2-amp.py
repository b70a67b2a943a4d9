# Full tuning of upernet_internvit-6b-224px_8xb2-80k_ade20k-504x504.py (mIoU 58.9 published) with fp32
# weights: the backbone computes in bf16 under autocast, the FPN and heads in fp32, under DeepSpeed
# ZeRO-2 (fp32 weights and gradients do not fit 80 GiB beside unsharded fp32 gradients: ZeRO-1 would not).
_base_ = ['./upernet_internvit-6b-224px_8xb2-80k_ade20k-504x504.py']
model = dict(backbone=dict(backbone_dtype='bfloat16'))
strategy = dict(bf16=dict(enabled=False), inputs_to_half=None, config=dict(data_types=dict(buffer_dtype='fp32')),
                zero_optimization=dict(stage=2))
