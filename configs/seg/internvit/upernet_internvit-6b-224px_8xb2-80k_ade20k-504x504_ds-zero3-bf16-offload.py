# upernet_internvit-6b-224px_8xb2-80k_ade20k-504x504_ds-zero3-bf16.py (full tuning, mIoU 58.9
# published) with the optimizer states and step offloaded to CPU memory (torch AdamW as the client
# optimizer; DeepSpeedCPUAdam is faster where its op builds).
_base_ = ['./upernet_internvit-6b-224px_8xb2-80k_ade20k-504x504_ds-zero3-bf16.py']
strategy = dict(zero_optimization=dict(offload_optimizer=dict(device='cpu', pin_memory=True)),
                config=dict(zero_force_ds_cpu_optimizer=False))
