# Linear probe of a frozen InternViT-6B-224px on ADE20K, single-scale mIoU 47.2 published (InternVL,
# Chen et al. CVPR 2024, semantic segmentation linear probing). BN + 1x1 conv on block 44, bf16 backbone,
# fp32 head, no weight decay, 80k iterations at batch 16 (8 GPUs x 2).
_base_ = ['../../_base_/models/linear_internvit.py', '../../_base_/datasets/ade20k_504x504.py',
          '../../_base_/seg_runtime.py', '../../_base_/schedules/schedule_80k_adamw.py']
model = dict(
    backbone=dict(arch='internvit-6b-224px', out_indices=[44], frozen=True, backbone_dtype='bfloat16',
                  pretrained='pretrained/InternViT-6B-224px'),
    decode_head=dict(in_channels=3200))
optim_wrapper = dict(optimizer=dict(weight_decay=0.0))
