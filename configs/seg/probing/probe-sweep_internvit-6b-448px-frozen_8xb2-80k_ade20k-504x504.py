# The probing study of probe-sweep_internvit-6b-224px-frozen_8xb2-80k_ade20k-504x504.py for InternViT-6B-448px
# (45 blocks: every 4th, 0 .. 44): 120 probes, no published number.
_base_ = ['./probe-sweep_internvit-6b-224px-frozen_8xb2-80k_ade20k-504x504.py']
model = dict(backbone=dict(arch='internvit-6b-448px', pretrained='pretrained/InternViT-6B-448px-V1-5'))
published_probe = None
