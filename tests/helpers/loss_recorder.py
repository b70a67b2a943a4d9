"""A test hook: after each training iteration, the loss averaged over all processes is appended to
``work_dir/<path>`` by rank 0, as "<iteration> <loss>"; before the first, the optimizer's parameter
groups as the strategy built them (lr, weight decay, layer id) go to ``work_dir/param_groups.json``."""
import json
import os

import torch
import torch.distributed as dist
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class LossRecorderHook(Hook):
    def __init__(self, path: str = 'losses.txt') -> None:
        self.path = path

    def before_train(self, runner) -> None:
        if runner.rank == 0:
            groups = [dict(lr=g['lr'], weight_decay=g['weight_decay'], layer_id=g.get('layer_id'),
                           numel=sum(p.numel() for p in g['params']))
                      for g in runner.optim_wrapper.optimizer.param_groups]
            with open(os.path.join(runner.work_dir, 'param_groups.json'), 'w') as f:
                json.dump(groups, f)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        loss = torch.as_tensor(outputs['loss'], dtype=torch.float64).detach().clone()
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(loss)
            loss /= dist.get_world_size()
        if runner.rank == 0:
            with open(os.path.join(runner.work_dir, self.path), 'a') as f:
                f.write(f'{runner.iter + 1} {loss.item():.10f}\n')
