# mask-rcnn_internvit-6b-224px_8xb2-1x_coco.py in bf16 instead of fp16: DeepSpeed ZeRO-1
# bf16 (parameters, buffers and images in bf16, fp32 master copies, no loss scaling; box arithmetic and
# RoIAlign in fp32, deformable attention on an fp32 copy); no published number.
_base_ = ['./mask-rcnn_internvit-6b-224px_8xb2-1x_coco.py']
model = dict(backbone=dict(backbone_dtype='bfloat16'))
strategy = dict(fp16=dict(enabled=False), bf16=dict(enabled=True), config=dict(data_types=dict(buffer_dtype='bf16')))
