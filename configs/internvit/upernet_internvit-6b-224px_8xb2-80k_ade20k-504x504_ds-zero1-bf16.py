# Full tuning of upernet_internvit-6b-224px_8xb2-80k_ade20k-504x504.py (mIoU 58.9 published) as the
# reference ran it: DeepSpeed ZeRO-1, everything in bf16 (weights, activations, the heads' BatchNorm
# buffers too), fp32 master weights in the sharded optimizer, activation checkpointing per block.
_base_ = ['./upernet_internvit-6b-224px_8xb2-80k_ade20k-504x504_ds-zero1.py']
model = dict(backbone=dict(backbone_dtype='float32'))  # DeepSpeed casts the whole model instead
strategy = dict(bf16=dict(enabled=True), inputs_to_half=['inputs'],
                config=dict(data_types=dict(buffer_dtype='bf16')))
