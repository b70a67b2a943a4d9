"""One probe of a sweep trained alone, as the linear-probe recipes train one: the reference a sweep's
probe must match bit for bit, and the baseline the sweep's cost is measured against."""
import copy

from mmengine.config import Config

from .head import probe_grid, probe_name, probe_seed


def lone_probe_config(cfg: Config, name: str) -> Config:
    """``cfg`` (a probe sweep) reduced to its probe ``name``: ``BatchedSlideEncoderDecoder`` + ``LinearProbeHead``
    on that block, initialised from the sweep's seed for it; ``LayerDecayOptimWrapperConstructor`` (rate 1)
    and mmengine's ``OptimWrapper`` with the probe's lr and weight decay (and the sweep's ``clip_grad``);
    mmseg's ``IoUMetric``."""
    head = cfg.model.decode_head
    grid = probe_grid(head.blocks, head.lrs, head.get('weight_decays', (0.0,)), head.get('norm', (True,)))
    settings = {probe_name(s): s for s in grid}
    if name not in settings:
        raise ValueError(f'no probe {name!r} in the sweep; it has {sorted(settings)}')
    setting = settings[name]
    cfg = copy.deepcopy(cfg)
    probe = {key: value for key, value in head.items()
             if key not in ('type', 'blocks', 'lrs', 'weight_decays', 'norm', 'seed', 'checkpoint_loss')}
    cfg.model.type = 'BatchedSlideEncoderDecoder'
    cfg.model.backbone.out_indices = [setting.block]
    cfg.model.decode_head = dict(probe, type='LinearProbeHead', in_index=0, with_norm=setting.norm,
                                 init_seed=probe_seed(head.get('seed', 0), name))
    wrapper = dict(type='OptimWrapper', constructor='LayerDecayOptimWrapperConstructor',
                   paramwise_cfg=dict(layer_decay_rate=1.0),
                   optimizer=dict(cfg.optim_wrapper.optimizer, lr=setting.lr, weight_decay=setting.weight_decay))
    if cfg.optim_wrapper.get('clip_grad'):
        wrapper['clip_grad'] = cfg.optim_wrapper.clip_grad
    cfg.optim_wrapper = wrapper
    for key in ('val_evaluator', 'test_evaluator'):
        if cfg.get(key):
            cfg[key] = dict(type='IoUMetric', iou_metrics=['mIoU'])
    return cfg

