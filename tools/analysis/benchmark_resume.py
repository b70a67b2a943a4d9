"""Time from ``tools/train.py --resume`` to the first resumed iteration, at iteration 50 and at 400 of
the same run (the CPU segmentation demo), for this project's ResumableIterBasedTrainLoop (moves the
sampler) beside mmengine's IterBasedTrainLoop (loads every skipped batch), side by side in one run:

    python tools/analysis/benchmark_resume.py [--work-dir work_dirs/benchmark_resume]
        [--out docs/benchmark_resume.txt]

The run trains once to 400 iterations (a checkpoint at 50 and at 400); each resume runs in a copy of
the work dir holding one of them. Target: ours equal within noise at 50 and 400."""
import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs' / 'seg' / 'demo' / 'upernet_internvit-tiny_1xb8-500it_synthetic-ade-112x112.py'
POINTS = (50, 400)
LOOPS = {'ResumableIterBasedTrainLoop (ours)': 'ResumableIterBasedTrainLoop',
         "IterBasedTrainLoop (mmengine's)": 'IterBasedTrainLoop'}


def train_command(work: Path, data: Path, loop: str, max_iters: int, resume: bool) -> list[str]:
    return [sys.executable, str(REPO / 'tools' / 'train.py'), str(CONFIG), '--work-dir', str(work),
            *(['--resume'] if resume else []), '--cfg-options', f'train_dataloader.dataset.data_root={data}',
            f'val_dataloader.dataset.data_root={data}', f'train_cfg.type={loop}', f'train_cfg.max_iters={max_iters}',
            f'train_cfg.val_interval={max_iters * 10}', 'default_hooks.checkpoint.interval=50',
            'default_hooks.checkpoint.max_keep_ckpts=20', 'default_hooks.logger.interval=1']


def seconds_to_first_iteration(work: Path, data: Path, loop: str, start: int) -> float:
    """Wall time from the resuming process's start to its log line of iteration ``start + 1``."""
    begin = time.perf_counter()
    process = subprocess.Popen(train_command(work, data, loop, start + 1, resume=True), cwd=REPO, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    pattern = re.compile(rf'Iter\(train\) \[\s*{start + 1}/')
    elapsed = None
    for line in process.stdout:
        if elapsed is None and pattern.search(line):
            elapsed = time.perf_counter() - begin
    if process.wait() != 0 or elapsed is None:
        raise SystemExit(f'the resume from iteration {start} with {loop} failed')
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-dir', default='work_dirs/benchmark_resume')
    parser.add_argument('--out', default='docs/benchmark_resume.txt')
    args = parser.parse_args()
    root = Path(args.work_dir).resolve()
    data = root / 'data'
    if not data.is_dir():
        from mmseg_custom.datasets import write_synthetic_ade
        write_synthetic_ade(data)
    run = root / 'run'
    if not (run / f'iter_{POINTS[-1]}.pth').is_file():
        print(f'training {POINTS[-1]} iterations once ...', flush=True)
        subprocess.run(train_command(run, data, 'ResumableIterBasedTrainLoop', POINTS[-1], resume=False), cwd=REPO,
                       check=True, stdout=subprocess.DEVNULL)
    rows = []
    for name, loop in LOOPS.items():
        times = []
        for point in POINTS:
            work = root / f'resume_{loop}_{point}'
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            shutil.copy(run / f'iter_{point}.pth', work / f'iter_{point}.pth')
            (work / 'last_checkpoint').write_text(str(work / f'iter_{point}.pth'))
            times.append(seconds_to_first_iteration(work, data, loop, point))
        rows.append(f'| {name} | {times[0]:.1f} | {times[1]:.1f} | {times[1] / times[0]:.2f} |')
    table = '\n'.join([f'# {Path(__file__).name}: seconds from --resume to the first resumed iteration, '
                       f'{CONFIG.name} on this CPU ({os.cpu_count()} cores), batch 8',
                       f'| loop | from iteration {POINTS[0]} | from iteration {POINTS[1]} | '
                       f'ratio {POINTS[1]}/{POINTS[0]} |',
                       '|---|---|---|---|', *rows])
    print(table)
    Path(args.out).write_text(table + '\n')


if __name__ == '__main__':
    main()
