# InternViT-300M-448px as the detection recipes use it (`arch={{_base_.internvit_300m_p16}}`): patch 16
# (the 14-pixel kernel resized on load), a 32x32 position grid (img_size 512), as 448 / 14.
internvit_300m_p16 = dict(embed_dims=1024, num_layers=24, num_heads=16, mlp_ratio=4.0, norm_type='ln', qk_norm=False,
                          qkv_bias=True, layer_scale_init=1.0, patch_size=16, img_size=512)
