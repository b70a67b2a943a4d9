# upernet_internvit-6b-224px-frozen_8xb2-80k_ade20k-504x504_ds-zero1.py (head tuning, mIoU 54.9
# published) with ZeRO-3: the frozen backbone in bf16, the FPN and UperNet in fp32.
_base_ = ['./upernet_internvit-6b-224px-frozen_8xb2-80k_ade20k-504x504_ds-zero1.py']
strategy = dict(zero_optimization=dict(stage=3))
