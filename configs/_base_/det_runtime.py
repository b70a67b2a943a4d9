# Runtime of every detection config: mmdet's (scope, hooks, DetLocalVisualizer) with our layers imported.
_base_ = ['mmdet::_base_/default_runtime.py', './engine_runtime.py']
custom_imports = dict(imports=['mmdet_custom'], allow_failed_imports=False)
default_scope = 'mmdet'
env_cfg = dict(dist_cfg=dict(backend='nccl'))  # gloo without a GPU: tools' --cpu (internvl_mmlab.compat)
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=2, save_best='auto'))  # and the best epoch
