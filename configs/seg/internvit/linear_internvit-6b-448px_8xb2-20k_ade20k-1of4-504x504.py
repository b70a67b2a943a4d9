# The protocol of linear_internvit-6b-224px_8xb2-20k_ade20k-1of4-504x504.py for InternViT-6B-448px (45 blocks): no published number.
# Blocks [44]; pretrained weights: any format internvl.checkpoint reads.
_base_ = ['./linear_internvit-6b-224px_8xb2-20k_ade20k-1of4-504x504.py']
model = dict(
    backbone=dict(arch='internvit-6b-448px', out_indices=[44], pretrained='pretrained/InternViT-6B-448px-V1-5'))
