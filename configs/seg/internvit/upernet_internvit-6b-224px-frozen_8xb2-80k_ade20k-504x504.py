# Head tuning: frozen InternViT-6B-224px (bf16) + trainable simple FPN and UperNet (1536 ch, aux FCN 0.4)
# on ADE20K, single-scale mIoU 54.9 published (InternVL, CVPR 2024). Blocks [11, 23, 35, 47], wd 0.05,
# no layer decay, 80k iterations at batch 16 (8 GPUs x 2). The auxiliary head on the stride-7 level
# (in_index 1), as the original head-tuning recipe set it.
_base_ = ['../../_base_/models/upernet_internvit.py', '../../_base_/datasets/ade20k_504x504.py',
          '../../_base_/seg_runtime.py', '../../_base_/schedules/schedule_80k_adamw.py']
model = dict(
    backbone=dict(arch='internvit-6b-224px', out_indices=[11, 23, 35, 47], frozen=True, backbone_dtype='bfloat16',
                  pretrained='pretrained/InternViT-6B-224px'),
    auxiliary_head=dict(in_index=1))
