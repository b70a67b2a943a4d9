# Few-shot protocol, 1/4 of the ADE20K training set (deterministic list from
# tools/make_fewshot_split.py: splits/ade20k_1of4.txt): trainable InternViT-6B-224px + linear head,
# single-scale mIoU 53.3 published (InternVL, CVPR 2024). 20k iterations, warm-up 400.
_base_ = ['./linear_internvit-6b-224px_8xb2-80k_ade20k-504x504.py']
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=400),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=400, end=20000),
]
train_cfg = dict(max_iters=20000)
train_dataloader = dict(dataset=dict(ann_file='splits/ade20k_1of4.txt'))
