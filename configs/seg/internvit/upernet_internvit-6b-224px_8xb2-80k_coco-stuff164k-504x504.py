# Full tuning on COCO-Stuff-164k (171 classes): the ADE20K full-tuning protocol (InternViT-6B-224px + simple
# FPN + UperNet, layer decay 0.95, drop path 0.4, DeepSpeed ZeRO-1 in bf16), as InternVL-MMDetSeg's
# upernet_intern_vit_6b_504_80k_cocostuff164k_bs16_lr4e-5.py: no published number.
_base_ = ['../../_base_/models/upernet_internvit.py', '../../_base_/datasets/coco-stuff164k_504x504.py',
          '../../_base_/seg_runtime.py', '../../_base_/schedules/schedule_80k_adamw_deepspeed.py',
          '../../_base_/strategies/deepspeed_zero1.py']
model = dict(
    backbone=dict(arch='internvit-6b-224px', out_indices=[11, 23, 35, 47], drop_path_rate=0.4, with_cp=True,
                  pretrained='pretrained/InternViT-6B-224px'),
    decode_head=dict(num_classes=171),
    auxiliary_head=dict(num_classes=171))
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.95))
strategy = dict(bf16=dict(enabled=True), inputs_to_half=['inputs'],
                config=dict(data_types=dict(buffer_dtype='bf16')))
