# The ViT-Adapter on InternViT-6B-224px as the published ADE20K recipe (58.1 mIoU) set it, shared by the
# detection and segmentation models (as `backbone={{_base_.internvit_adapter}}`, replacing theirs): patch
# 16 (the 14-pixel kernel resized on load, 16x16 position grid interpolated at run time), global
# attention, no cls token, interactions over the four quarters of the 48 blocks, 25 deformable-attention
# heads (3200 / 25 = 128 channels a head; 800 / 25 = 32 for the values at deform ratio 0.25), 4 points,
# ConvFFN ratio 0.25, injector gamma 0, channels-first LayerNorm (fp32) in the spatial prior and the
# four final norms, activation checkpointing (InternVL-MMDetSeg's InternViTAdapter).
internvit_adapter = dict(
    _delete_=True,
    type='InternViTAdapter',
    arch='internvit-6b-224px-p16',
    interaction_indexes=[[0, 11], [12, 23], [24, 35], [36, 47]],
    conv_inplane=64,
    n_points=4,
    deform_num_heads=25,
    deform_ratio=0.25,
    init_values=0.0,
    cffn_ratio=0.25,
    with_cffn=True,
    add_vit_feature=True,
    use_extra_extractor=True,
    use_final_norm=True,
    use_cls_token=False,
    drop_path_rate=0.0,
    with_cp=True,
    pretrained=None)
