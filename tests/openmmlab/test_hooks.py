"""BroadcastBuffersHook: DeepSpeed keeps each rank's BatchNorm statistics apart; after the hook every
rank holds rank 0's buffers (floating and integer), as DDP would."""
import os

import torch
import torch.multiprocessing as mp
from torch import nn


def _worker(rank: int, port: int, results) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE='2')
    torch.distributed.init_process_group('gloo', rank=rank, world_size=2)
    from internvl_mmlab.engine.hooks import broadcast_buffers
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.BatchNorm1d(2))
    model.train()
    torch.manual_seed(rank)  # each rank sees other data, so its running statistics differ
    model[1](torch.randn(8, 4, 5, 5) * (rank + 1))
    for _ in range(rank + 1):
        model[2](torch.randn(6, 2))
    count = broadcast_buffers(model)
    results[rank] = (count, {k: v.clone() for k, v in model.state_dict().items() if 'running' in k or 'num_batches' in k})
    torch.distributed.destroy_process_group()


def test_broadcast_buffers_gives_every_rank_rank_zeros_buffers():
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_worker, args=(29573, results), nprocs=2)
        (count0, rank0), (count1, rank1) = results[0], results[1]
    assert count0 == count1 == 6
    for key, value in rank0.items():
        assert torch.equal(value, rank1[key]), key
    assert rank0['2.num_batches_tracked'].item() == 1  # rank 0's count, not rank 1's 2
