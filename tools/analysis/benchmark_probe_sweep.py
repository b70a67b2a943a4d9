"""The probe sweep's cost, measured side by side in one run (each scenario in a fresh process, so that its
peak memory is its own), on synthetic ADE20K-layout data with a frozen, randomly initialised InternViT:

1. a sweep of K=8 probes (4 lrs x BN or the plain conv, on the last block) for ITERS iterations, against the
   8 probes each trained alone (``lone_probe_config``: the linear-probe recipe) for ITERS iterations;
   the sweep also with ``checkpoint_loss`` (as the 6B recipes set it: the full-resolution logits
   recomputed in the backward pass, to save memory);
2. one epoch of probe training from a feature cache against the same epoch live (the backbone run on the
   images), for the 8-probe sweep and for one probe; writing the cache is timed too (it is done once);
3. the peak memory of each (the process's resident memory while it trains, the model and optimizer
   included, sampled every 5 ms).

    python tools/analysis/benchmark_probe_sweep.py [--width 384] [--depth 12] [--crop 224] [--iters 4]
        [--batch 2] [--images 16]

What bounds the ratios: a sweep runs the backbone once and the K probes; K separate runs run the backbone
K times. Each probe's work is its loss at full resolution (logits upsampled to the label size, 150-class
cross-entropy), which on a CPU costs as much as a small backbone's forward; so the ratios grow with the
backbone's share, and the script prints that share (one probe's step / the backbone's forward) beside them.
"""
import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / 'configs' / 'seg' / 'demo' / 'probe-sweep_internvit-tiny_1xb4-120it_synthetic-ade-112x112.py'
LRS = [1e-3, 2e-3, 4e-3, 8e-3]


def sweep_config(args: argparse.Namespace, root: Path, name: str, iters: int):
    """The demo sweep at the benchmark's size: K=8 probes on the last block, the fixed pipeline, no validation."""
    from mmengine.config import Config
    cfg = Config.fromfile(str(DEMO))
    block = args.depth - 1
    crop = (args.crop, args.crop)
    cfg.merge_from_dict({
        'model.backbone.arch': dict(cfg.model.backbone.arch, embed_dims=args.width, num_layers=args.depth,
                                    num_heads=args.width // 32, img_size=args.crop),
        'model.backbone.out_indices': [block], 'model.backbone.pretrained': str(root / 'vit.pth'),
        'model.data_preprocessor.size': crop, 'model.decode_head.in_channels': args.width,
        'model.decode_head.blocks': [block], 'model.decode_head.lrs': LRS,
        'train_dataloader.batch_size': args.batch, 'train_dataloader.num_workers': 1,
        'train_cfg.max_iters': iters, 'train_cfg.val_interval': iters + 1, 'default_hooks.logger.interval': 1000,
        'work_dir': str(root / name), 'experiment_name': name})
    for step in cfg.fixed_pipeline:
        if step.type == 'Resize':
            step.scale = crop
        if step.type == 'CenterCrop':
            step.crop_size = crop
    cfg.train_dataloader.dataset.update(data_root=str(root / 'data'), pipeline=cfg.fixed_pipeline)
    cfg.val_dataloader.dataset.data_root = str(root / 'data')
    cfg.default_hooks.checkpoint = None
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    return cfg


class PeakMemory:
    """The peak resident memory of this process while it is entered, sampled every 5 ms (MiB)."""

    def __enter__(self) -> 'PeakMemory':
        self.peak, self.running = rss_mib(), True
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()
        return self

    def sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, rss_mib())
            time.sleep(0.005)

    def __exit__(self, *exc) -> None:
        self.running = False
        self.thread.join()


def rss_mib() -> float:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2 ** 20


def run_scenario(args: argparse.Namespace) -> None:
    """In this process: one scenario; prints ``RESULT {json}``."""
    import mmseg_custom  # noqa: F401
    from mmengine.hooks import Hook
    from mmengine.runner import Runner
    from mmseg_custom.probing import lone_probe_config, use_feature_cache, write_feature_cache
    root, kind = Path(args.root), args.scenario
    epoch = args.images // args.batch
    cfg = sweep_config(args, root, kind.replace(':', '_'), epoch if kind.startswith(('live', 'cache')) else args.iters)
    if kind == 'write':
        start = time.perf_counter()
        with PeakMemory() as memory:
            write_feature_cache(cfg, str(DEMO), root / 'cache' / 'train', 'train', dtype='float32', num_workers=1)
        seconds = time.perf_counter() - start
    else:
        cfg.model.decode_head.checkpoint_loss = kind == 'sweep-checkpoint'
        if kind.endswith('one'):
            cfg = lone_probe_config(cfg, 'b{}_lr1e-03'.format(args.depth - 1))
            cfg.model.decode_head.pop('init_seed')
            cfg.optim_wrapper.paramwise_cfg.num_layers = args.depth  # a cached run has no blocks to count
        if kind.startswith('cache'):
            cfg.model.backbone = dict(type='CachedFeatures', out_indices=cfg.model.backbone.out_indices)
            cfg.model.data_preprocessor = dict(type='CachedFeaturePreProcessor')
            cfg.train_dataloader.dataset = dict(type='CachedFeatureDataset', cache_dir=str(root / 'cache' / 'train'),
                                                blocks=cfg.model.backbone.out_indices)
        if kind.startswith('alone:'):
            cfg = lone_probe_config(cfg, kind.split(':')[1])

        class Timer(Hook):
            def before_train(self, runner):
                self.memory = PeakMemory().__enter__()
                self.start = time.perf_counter()

            def after_train(self, runner):
                self.seconds = time.perf_counter() - self.start
                self.memory.__exit__()

        timer = Timer()
        runner = Runner.from_cfg(cfg)
        runner.register_hook(timer)
        runner.train()
        seconds, memory = timer.seconds, timer.memory
    print('RESULT ' + json.dumps(dict(seconds=seconds, peak_mib=memory.peak)))


def component_share(args: argparse.Namespace) -> float:
    """One probe's training step (BN + conv + full-resolution loss, forward and backward) / the backbone's forward."""
    import torch.nn.functional as F
    from internvl.models import InternViT
    vit = InternViT(dict(embed_dims=args.width, num_layers=args.depth, num_heads=args.width // 32, mlp_ratio=4.0,
                         norm_type='rms', qk_norm=True, qkv_bias=False, layer_scale_init=0.1, patch_size=14,
                         img_size=args.crop)).eval()
    images = torch.randn(args.batch, 3, args.crop, args.crop)
    labels = torch.randint(0, 150, (args.batch, args.crop, args.crop))
    bn, conv = torch.nn.BatchNorm2d(args.width), torch.nn.Conv2d(args.width, 150, 1)

    def backbone():
        with torch.no_grad():
            return vit(images)[0]

    features = backbone().contiguous()

    def probe():
        logits = F.interpolate(conv(bn(features)), size=labels.shape[1:], mode='bilinear', align_corners=False)
        F.cross_entropy(logits, labels, ignore_index=255).backward()

    timings = []
    for fn in (backbone, probe):
        fn()
        start = time.perf_counter()
        for _ in range(3):
            fn()
        timings.append((time.perf_counter() - start) / 3)
    return timings[1] / timings[0]


def run_in_process(scenario: str, root: Path, args: argparse.Namespace) -> dict:
    out = subprocess.run([sys.executable, __file__, '--scenario', scenario, '--root', str(root),
                          *(f'--{k}={getattr(args, k)}' for k in ('width', 'depth', 'crop', 'iters', 'batch', 'images'))],
                         capture_output=True, text=True, cwd=REPO)
    line = [x for x in out.stdout.splitlines() if x.startswith('RESULT ')]
    if out.returncode or not line:
        raise SystemExit(f'{scenario} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}')
    return json.loads(line[0][len('RESULT '):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--width', type=int, default=384)
    parser.add_argument('--depth', type=int, default=12)
    parser.add_argument('--crop', type=int, default=224)
    parser.add_argument('--iters', type=int, default=4)
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--images', type=int, default=16)
    parser.add_argument('--scenario', help=argparse.SUPPRESS)
    parser.add_argument('--root', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scenario:
        return run_scenario(args)

    from internvl import InternViT
    from mmseg_custom.datasets import write_synthetic_ade
    from mmseg_custom.probing import probe_grid, probe_name
    root = Path(tempfile.mkdtemp(prefix='probe_bench_'))
    write_synthetic_ade(root / 'data', num_train=args.images, num_val=1, size=args.crop)
    torch.manual_seed(0)
    vit = InternViT(dict(embed_dims=args.width, num_layers=args.depth, num_heads=args.width // 32, mlp_ratio=4.0,
                         norm_type='rms', qk_norm=True, qkv_bias=False, layer_scale_init=0.1, patch_size=14,
                         img_size=args.crop))
    torch.save(vit.state_dict(), root / 'vit.pth')
    names = [probe_name(s) for s in probe_grid([args.depth - 1], LRS, norm=[True, False])]
    scenarios = ['sweep', 'sweep-checkpoint', *(f'alone:{n}' for n in names), 'write', 'live', 'cache',
                 'live-one', 'cache-one']
    try:
        results = {scenario: run_in_process(scenario, root, args) for scenario in scenarios}
    finally:
        shutil.rmtree(root)

    share = component_share(args)
    alone = [results[f'alone:{n}'] for n in names]
    alone_seconds = sum(r['seconds'] for r in alone)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, fp32; InternViT width {args.width} depth '
          f'{args.depth}, crop {args.crop}, batch {args.batch}, 150 classes; frozen backbone, probes on block '
          f'{args.depth - 1}')
    print(f'one probe\'s step / the backbone\'s forward: {share:.3f} (the bound on K=8 / 8 runs: '
          f'{8 * (1 + share) / (1 + 8 * share):.2f}x; with no probe cost 8x)')
    print(f'{args.iters} iterations:')
    print(f'  sweep of 8 probes                               : {results["sweep"]["seconds"]:7.2f} s, '
          f'peak {results["sweep"]["peak_mib"]:.0f} MiB')
    print(f'  sweep of 8 probes, checkpoint_loss (6B recipes) : {results["sweep-checkpoint"]["seconds"]:7.2f} s, '
          f'peak {results["sweep-checkpoint"]["peak_mib"]:.0f} MiB')
    print(f'  8 probes trained alone, one after another       : {alone_seconds:7.2f} s, peak (largest) '
          f'{max(r["peak_mib"] for r in alone):.0f} MiB')
    print(f'  8 runs / sweep: {alone_seconds / results["sweep"]["seconds"]:.2f}x, '
          f'{alone_seconds / results["sweep-checkpoint"]["seconds"]:.2f}x with checkpoint_loss')
    epoch = args.images // args.batch
    print(f'one epoch ({args.images} images, {epoch} iterations):')
    print(f'  writing the fp32 cache (once)      : {results["write"]["seconds"]:7.2f} s')
    for label, live, cached in (('sweep of 8 probes', 'live', 'cache'), ('one probe', 'live-one', 'cache-one')):
        print(f'  {label:17s} live / from the cache: {results[live]["seconds"]:7.2f} s / '
              f'{results[cached]["seconds"]:7.2f} s = {results[live]["seconds"] / results[cached]["seconds"]:.2f}x; '
              f'peak {results[live]["peak_mib"]:.0f} / {results[cached]["peak_mib"]:.0f} MiB')


if __name__ == '__main__':
    main()
