# Runtime of every segmentation config: our layers and engine, mmseg's scope, logging and checkpoints.
_base_ = ['./engine_runtime.py']
custom_imports = dict(imports=['mmseg_custom'], allow_failed_imports=False)
default_scope = 'mmseg'
env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),  # gloo without a GPU (internvl_mmlab.compat)
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
# tools/test.py --tta: the dataset's tta_pipeline (scales x flips), merged as mmseg's SegTTAModel merges them,
# the slide inference of all augmentations batched together.
tta_model = dict(type='BatchedSegTTAModel')
