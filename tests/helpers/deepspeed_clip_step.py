"""One AdamW step of a small MLP through DeepSpeed ZeRO-1 on the CPU, for
tests/openmmlab/test_precision.py::test_deepspeed_fp16_autocast_clips_scaled_gradients:

    python tests/helpers/deepspeed_clip_step.py PRECISION GRADIENT_CLIPPING   # PRECISION: fp32 | fp16 | bf16

fp16 / bf16 are the strategies of configs/_base_/strategies/deepspeed_zero1_{fp16,bf16}.py (every
parameter cast; fp16 with its dynamic loss scale, started low enough here that the step is applied).
Prints ``UPDATE <norm of the parameter change>``."""
import os
import sys

import torch

os.environ.update(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1',
                  MASTER_PORT=os.environ.get('MASTER_PORT', '29611'))

from recipe_step import deepspeed_fp16_on_cpu  # noqa: E402


def main(precision: str, clipping: float) -> None:
    import deepspeed
    deepspeed_fp16_on_cpu()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.GELU(), torch.nn.Linear(64, 8))
    x, y = torch.randn(32, 64), torch.randn(32, 8)
    config = dict(train_micro_batch_size_per_gpu=32, gradient_clipping=clipping, zero_optimization=dict(stage=1))
    if precision == 'fp16':
        config['fp16'] = dict(enabled=True, loss_scale=0, initial_scale_power=4)
    elif precision == 'bf16':
        config['bf16'] = dict(enabled=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=config)
    dtype = next(engine.module.parameters()).dtype
    before = [p.detach().float().clone() for p in engine.module.parameters()]
    engine.backward(((engine(x.to(dtype)).float() - y) ** 2).mean())
    engine.step()
    assert engine.skipped_steps == 0
    change = torch.cat([(p.detach().float() - b).flatten() for p, b in zip(engine.module.parameters(), before)])
    print(f'UPDATE {change.norm().item():.6g}', flush=True)


if __name__ == '__main__':
    main(sys.argv[1], float(sys.argv[2]))
