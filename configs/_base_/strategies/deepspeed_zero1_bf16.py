# deepspeed_zero1_fp16.py in bf16 (the `*_ds-zero1-bf16` COCO recipes): every parameter, buffer and
# image in bf16, fp32 master copies in the sharded optimizer, no loss scaling (bf16 has fp32's range).
# mmcv's deformable attention has no bf16 CUDA kernel: the adapter runs it on an fp32 copy, and RoIAlign
# and the box arithmetic are fp32 in any precision (internvl_mmlab/precision.py).
_base_ = ['./deepspeed_zero1.py']
strategy = dict(bf16=dict(enabled=True), inputs_to_half=['inputs'], config=dict(data_types=dict(buffer_dtype='bf16')))
