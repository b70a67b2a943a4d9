# Head tuning on COCO-Stuff-164k (171 classes): the ADE20K head-tuning protocol (frozen InternViT-6B-224px
# in bf16 + trainable simple FPN and UperNet, 1536 ch, aux FCN 0.4 on the stride-7 level), as
# InternVL-MMDetSeg's upernet_intern_vit_6b_504_80k_cocostuff164k_bs16_lr4e-5_frozen.py: no published number.
_base_ = ['../../_base_/models/upernet_internvit.py', '../../_base_/datasets/coco-stuff164k_504x504.py',
          '../../_base_/seg_runtime.py', '../../_base_/schedules/schedule_80k_adamw.py']
model = dict(
    backbone=dict(arch='internvit-6b-224px', out_indices=[11, 23, 35, 47], frozen=True, backbone_dtype='bfloat16',
                  pretrained='pretrained/InternViT-6B-224px'),
    decode_head=dict(num_classes=171),
    auxiliary_head=dict(in_index=1, num_classes=171))
