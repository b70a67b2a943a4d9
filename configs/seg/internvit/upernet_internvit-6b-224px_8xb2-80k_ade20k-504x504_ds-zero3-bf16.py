# upernet_internvit-6b-224px_8xb2-80k_ade20k-504x504 (full tuning, DeepSpeed ZeRO-1 bf16, mIoU 58.9
# published) with ZeRO-3: weights sharded too.
_base_ = ['./upernet_internvit-6b-224px_8xb2-80k_ade20k-504x504.py']
strategy = dict(zero_optimization=dict(stage=3))
