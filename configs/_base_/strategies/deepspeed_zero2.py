# deepspeed_zero1.py with ZeRO stage 2: the gradients sharded too.
_base_ = ['./deepspeed_zero1.py']
strategy = dict(zero_optimization=dict(stage=2))
