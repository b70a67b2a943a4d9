"""Scenarios for tests/openmmlab/test_compat.py, each run in a fresh process: with our layer
(`python compat_scenarios.py NAME`: ``internvl_mmlab`` imported, so its workarounds applied, and our
registered subclass where one replaces mmengine's class) or with mmengine as shipped (`... NAME
--upstream`: nothing of ours imported, mmengine's own class)."""
import os
import sys
import tempfile

import torch
from torch import nn

from internvl.utils.dist import single_process_env


def checkpoint() -> None:
    """mmengine saves a checkpoint whose meta pickles objects, then loads it back (weights_only)."""
    import numpy as np
    from mmengine.logging import MessageHub
    from mmengine.runner.checkpoint import load_checkpoint, save_checkpoint
    model = nn.Linear(2, 2)
    hub = MessageHub.get_instance('scenario')
    hub.update_scalar('train/loss', 0.5)
    path = os.path.join(tempfile.mkdtemp(), 'iter_1.pth')
    save_checkpoint({'meta': {'seed': np.int64(3), 'message_hub': hub.state_dict()},
                     'state_dict': model.state_dict()}, path)
    ckpt = load_checkpoint(nn.Linear(2, 2), path)
    assert ckpt['meta']['seed'] == 3


def deepspeed() -> None:
    """mmengine builds a DeepSpeedStrategy (twice) and DeepSpeed's optimizers are registered."""
    from mmengine._strategy import DeepSpeedStrategy
    from mmengine.registry import OPTIMIZERS
    for _ in range(2):
        DeepSpeedStrategy(zero_optimization=dict(stage=2))
    assert 'DeepSpeedCPUAdam' in OPTIMIZERS


def init_dist() -> None:
    """mmengine's init_dist('pytorch', backend='gloo') on a machine without a GPU."""
    from mmengine.dist import get_world_size, init_dist
    single_process_env()
    init_dist('pytorch', backend='gloo')
    assert get_world_size() == 1 and torch.distributed.get_backend() == 'gloo'


def init_dist_nccl() -> None:
    """mmengine's init_dist('pytorch') asks for nccl on a machine without a GPU: a clear error, no gloo."""
    from mmengine.dist import init_dist
    single_process_env()
    try:
        init_dist('pytorch', backend='nccl')
    except RuntimeError as e:
        assert "env_cfg.dist_cfg.backend='nccl' needs a GPU" in str(e) and '--cpu' in str(e), e
        assert not torch.distributed.is_initialized()
        return
    raise AssertionError('nccl without a GPU started a process group')


def ddp() -> None:
    """The DDP wrapper exactly as mmengine's Runner builds it, around a CPU model, trains a step."""
    from mmengine.model import BaseModel, MMDistributedDataParallel
    from mmengine.optim import OptimWrapper
    if OURS:
        from internvl_mmlab.engine import CPUCompatibleDistributedDataParallel as MMDistributedDataParallel
    single_process_env()
    torch.distributed.init_process_group('gloo')

    class Tiny(BaseModel):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 1)

        def forward(self, inputs, mode='loss'):
            return {'loss': self.fc(inputs).square().mean()}

    model = MMDistributedDataParallel(module=Tiny(), device_ids=[int(os.environ['LOCAL_RANK'])],
                                      broadcast_buffers=False, find_unused_parameters=False)
    before = model.module.fc.weight.detach().clone()
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    model.train_step({'inputs': torch.randn(4, 2)}, optim)
    assert not torch.equal(before, model.module.fc.weight)


def amp() -> None:
    """AmpOptimWrapper(dtype='bfloat16') trains on the CPU under bf16 autocast."""
    from mmengine.optim import AmpOptimWrapper
    if OURS:
        from internvl_mmlab.engine import PortableAmpOptimWrapper as AmpOptimWrapper
    model = nn.Linear(4, 4)
    wrapper = AmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1), dtype='bfloat16')
    before = model.weight.detach().clone()
    with wrapper.optim_context(model):
        out = model(torch.randn(2, 4))
    assert out.dtype == torch.bfloat16
    wrapper.update_params(out.float().square().mean())
    assert not torch.equal(before, model.weight)


def fsdp() -> None:
    """FSDPStrategy saves and reloads its optimizer state (the resume path) on current torch."""
    from mmengine._strategy import FSDPStrategy
    from mmengine.optim import OptimWrapper
    if OURS:
        from internvl_mmlab.engine import ResumableFSDPStrategy as FSDPStrategy
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    single_process_env()
    torch.distributed.init_process_group('gloo')
    module = FSDP(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2)), device_id=torch.device('cpu'),
                  use_orig_params=True)
    optimizer = torch.optim.AdamW(module.parameters(), lr=0.1)
    module(torch.randn(3, 4)).sum().backward()
    optimizer.step()
    strategy = FSDPStrategy(state_dict_cfg='full')
    strategy.model, strategy.optim_wrapper = module, OptimWrapper(optimizer)
    saved = strategy.optim_state_dict()
    strategy.load_optim_state_dict(saved)
    assert optimizer.state_dict()['state'][0]['step'] == 1


OURS = '--upstream' not in sys.argv

if __name__ == '__main__':
    name = sys.argv[1]
    if OURS:
        import internvl_mmlab  # noqa: F401  (applies the workarounds, registers our subclasses)
    globals()[name]()
    print('scenario passed')
