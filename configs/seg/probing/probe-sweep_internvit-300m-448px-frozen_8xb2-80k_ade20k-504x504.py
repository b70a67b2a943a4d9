# The probing study of probe-sweep_internvit-6b-224px-frozen_8xb2-80k_ade20k-504x504.py for InternViT-300M-448px
# (24 blocks, width 1024): every 4th block ending at the last (3 .. 23) x the 5 lrs x BN or not = 60
# probes, no published number.
_base_ = ['./probe-sweep_internvit-6b-224px-frozen_8xb2-80k_ade20k-504x504.py']
blocks = [3, 7, 11, 15, 19, 23]
model = dict(
    backbone=dict(arch='internvit-300m-448px', out_indices=blocks, pretrained='pretrained/InternViT-300M-448px'),
    decode_head=dict(in_channels=1024, blocks=blocks))
published_probe = None
