# The protocol of linear_internvit-6b-224px_8xb2-20k_ade20k-1of4-504x504.py for InternViT-300M-448px (24 blocks): no published number.
# Blocks [23]; pretrained weights: any format internvl.checkpoint reads.
_base_ = ['./linear_internvit-6b-224px_8xb2-20k_ade20k-1of4-504x504.py']
model = dict(
    backbone=dict(arch='internvit-300m-448px', out_indices=[23], pretrained='pretrained/InternViT-300M-448px'),
    decode_head=dict(in_channels=1024))
