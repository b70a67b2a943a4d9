# deepspeed_zero1.py with ZeRO stage 3: the gradients and the weights sharded too.
_base_ = ['./deepspeed_zero1.py']
strategy = dict(zero_optimization=dict(stage=3))
