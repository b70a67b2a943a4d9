"""The optimizer of a probe sweep: one AdamW (or any torch optimizer), one set of parameter groups per
probe with that probe's lr and weight decay, and gradient clipping per probe.

Each probe's groups are those ``internvl.models.layer_decay`` gives a lone linear-probe head under
``LayerDecayOptimWrapperConstructor`` (no weight decay on 1-D parameters, decay rate 1), so a probe's
update is the one it would get alone. The parameter schedulers scale every group by the same factors.
A shared loss scale would skip every probe's step when one overflows, so the AMP wrappers are refused:
the sweep's probes train in fp32 on the frozen backbone's maps.
"""
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, OPTIMIZERS
from torch import nn

from internvl.models.layer_decay import layer_decay_param_groups

from .head import ProbeSweepHead


@OPTIM_WRAPPERS.register_module()
class ProbeSweepOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose ``clip_grad`` clips each probe's gradients on their own (the groups' ``probe``
    key); ``train/grad_norm`` logs the largest probe's norm."""

    def _clip_grad(self) -> None:
        probes: dict[str, list] = {}
        for group in self.optimizer.param_groups:
            probes.setdefault(group['probe'], []).extend(p for p in group['params'] if p.grad is not None)
        norms = [self.clip_func(params, **self.clip_grad_kwargs) for params in probes.values() if params]
        norms = [float(norm) for norm in norms if norm is not None]  # clip_grad_value_ returns None
        if norms:
            self.message_hub.update_scalar(f'train/{self.grad_name}', max(norms))


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class ProbeSweepOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """The optimizer's ``lr`` / ``weight_decay`` are unused: every probe brings its own (the sweep's grid)."""

    def __call__(self, model: nn.Module) -> OptimWrapper:
        model = getattr(model, 'module', model)
        head = getattr(model, 'decode_head', None)
        if not isinstance(head, ProbeSweepHead):
            raise ValueError('ProbeSweepOptimWrapperConstructor: the model has no ProbeSweepHead as its decode_head')
        if self.paramwise_cfg:
            raise ValueError(f'ProbeSweepOptimWrapperConstructor: paramwise_cfg {dict(self.paramwise_cfg)} is not '
                             f'supported (each probe has its own lr and weight decay; set optim_wrapper with _delete_)')
        wrapper_cfg = self.optim_wrapper_cfg.copy()
        wrapper_type = wrapper_cfg.setdefault('type', 'ProbeSweepOptimWrapper')
        if wrapper_type not in ('ProbeSweepOptimWrapper', ProbeSweepOptimWrapper):
            raise ValueError(f'ProbeSweepOptimWrapperConstructor: optim_wrapper type {wrapper_type!r}; a probe sweep '
                             f'trains with ProbeSweepOptimWrapper (per-probe clipping; no shared AMP loss scale)')
        in_head = {id(p) for p in head.parameters()}
        stray = [name for name, p in model.named_parameters() if p.requires_grad and id(p) not in in_head]
        if stray:
            raise ValueError(f'ProbeSweepOptimWrapperConstructor: {stray[0]} (and {len(stray) - 1} more) would train '
                             f'outside the probes; a sweep trains its probes only')
        params = []
        for name, probe in head.items():
            setting = head.settings[name]
            for group in layer_decay_param_groups(probe, setting.lr, setting.weight_decay, 1.0, num_layers=1):
                params.append(dict(group, probe=name))
        optimizer = OPTIMIZERS.build(dict(self.optimizer_cfg, params=params))
        print_log(f'probe sweep: {len(head)} probes, {len(params)} parameter groups, lrs '
                  f'{sorted({s.lr for s in head.settings.values()})}', logger='current')
        return OPTIM_WRAPPERS.build(wrapper_cfg, default_args=dict(optimizer=optimizer))
