# UperNet (1536 ch, aux FCN 0.4) on InternViT-6B-224px + ViT-Adapter: the adapter's four maps (strides 4
# / 8 / 16 / 32) into the heads; crop 512 and slide inference 512 / 341 (multiples of the adapter's 32).
_base_ = ['./upernet_internvit.py', './internvit-adapter-6b-224px.py']
model = dict(
    data_preprocessor=dict(size=(512, 512)),
    backbone={{_base_.internvit_adapter}},
    test_cfg=dict(crop_size=(512, 512), stride=(341, 341)))
