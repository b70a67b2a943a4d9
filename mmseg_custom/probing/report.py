"""The study's outputs from a probe sweep's work dir: a table (block x lr -> mIoU, best per row) as
markdown and CSV, and a plot of mIoU against block depth, one line per (lr, norm, weight decay).

The scores (``probe/<name>/mIoU`` for every probe) are the newest run's: ``tools/test.py``'s metrics, or
the last validation of a training run. The config mmengine saved in the work dir may name the published
single probe (``published_probe = dict(probe=..., mIoU=..., source=...)``): the plot marks it, and
the table names the sweep's score for that probe beside it.
"""
import csv
import json
from pathlib import Path
from typing import Optional, Union

from mmengine.config import Config

from .head import ProbeSetting, parse_probe_name, short_number

KEY = 'probe/{}/mIoU'


def last_probe_scores(work_dir: Union[str, Path]) -> tuple[dict[str, float], Path]:
    """probe name -> mIoU of the newest run's last evaluation that scored probes, and the file it came from:
    a test's metrics (``<timestamp>/<timestamp>.json``, ``tools/test.py``) or a training run's last
    validation (``<timestamp>/vis_data/scalars.json``)."""
    runs = sorted((p for p in Path(work_dir).iterdir() if p.is_dir()), reverse=True) if Path(work_dir).is_dir() else []
    for run in runs:
        sources = [(run / f'{run.name}.json', False), (run / 'vis_data' / 'scalars.json', True)]
        for path, lines in sources:
            if not path.is_file():
                continue
            records = [json.loads(line) for line in path.read_text().splitlines()] if lines else [json.loads(path.read_text())]
            scored = [r for r in records if any(key.startswith('probe/') for key in r)]
            if scored:
                return {key[len('probe/'):-len('/mIoU')]: value for key, value in scored[-1].items()
                        if key.startswith('probe/') and key.endswith('/mIoU')}, path
    raise FileNotFoundError(f'{work_dir}: no evaluation of a probe sweep found (probe/<name>/mIoU in a run\'s '
                            f'<timestamp>/<timestamp>.json or <timestamp>/vis_data/scalars.json)')


def published_probe(work_dir: Union[str, Path]) -> Optional[dict]:
    """The ``published_probe`` of the config mmengine saved in ``work_dir``, if any."""
    for path in sorted(Path(work_dir).glob('*.py')):
        value = Config.fromfile(str(path)).get('published_probe')
        if value:
            return dict(value)
    return None


def _row_key(setting: ProbeSetting) -> tuple:
    return setting.block, not setting.norm, setting.weight_decay


def score_table(scores: dict[str, float]) -> tuple[list[str], list[list]]:
    """Header and rows: one row per (block, norm, weight decay), one column per lr, then the best lr and its mIoU."""
    settings = {name: parse_probe_name(name) for name in scores}
    lrs = sorted({s.lr for s in settings.values()})
    rows: dict[tuple, dict[float, float]] = {}
    for name, setting in settings.items():
        rows.setdefault(_row_key(setting), {})[setting.lr] = scores[name]
    header = ['block', 'norm', 'weight_decay', *(f'lr={short_number(lr)}' for lr in lrs), 'best_lr', 'best_mIoU']
    table = []
    for (block, plain, wd), by_lr in sorted(rows.items()):
        best = max(by_lr, key=by_lr.get)
        table.append([block, 'conv' if plain else 'BN', wd, *(by_lr.get(lr, '') for lr in lrs), short_number(best),
                      by_lr[best]])
    return header, table


def write_probe_report(work_dir: Union[str, Path], out_dir: Optional[Union[str, Path]] = None) -> dict[str, Path]:
    """probe_report.md, probe_report.csv and probe_report.png in ``out_dir`` (default ``work_dir``)."""
    scores, source = last_probe_scores(work_dir)
    published = published_probe(work_dir)
    out_dir = Path(out_dir or work_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    header, rows = score_table(scores)
    paths = dict(csv=out_dir / 'probe_report.csv', markdown=out_dir / 'probe_report.md', plot=out_dir / 'probe_report.png')
    with open(paths['csv'], 'w', newline='') as f:
        csv.writer(f).writerows([header, *([f'{v:.2f}' if isinstance(v, float) and i > 2 else v
                                            for i, v in enumerate(row)] for row in rows)])
    best = max(scores, key=scores.get)
    lines = [f'Probe sweep: {len(scores)} probes, mIoU (%) from {source}. '
             f'Best: {best} ({scores[best]:.2f}).', '',
             '| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(f'{v:.2f}' if isinstance(v, float) and i > 2 else str(v) for i, v in enumerate(row))
              + ' |' for row in rows]
    if published:
        ours = scores.get(published['probe'])
        lines += ['', f'Published: {published["probe"]} {published["mIoU"]} mIoU ({published.get("source", "")}); '
                      f'this sweep: ' + (f'{ours:.2f}' if ours is not None else 'not in the grid')]
    paths['markdown'].write_text('\n'.join(lines) + '\n')
    plot_scores(scores, published, paths['plot'])
    return paths


def plot_scores(scores: dict[str, float], published: Optional[dict], path: Path) -> None:
    """mIoU against block depth, one line per (lr, norm, weight decay); the published probe as a star."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt
    lines: dict[tuple, list] = {}
    for name, value in scores.items():
        s = parse_probe_name(name)
        lines.setdefault((s.lr, s.norm, s.weight_decay), []).append((s.block, value))
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=100)
    colours = {lr: f'C{i}' for i, lr in enumerate(sorted({lr for lr, _, _ in lines}))}
    for (lr, norm, wd), points in sorted(lines.items()):
        points.sort()
        label = f'lr {short_number(lr)}, ' + ('BN + conv' if norm else 'conv') + (f', wd {short_number(wd)}' if wd else '')
        axes.plot(*zip(*points), marker='o', color=colours[lr], linestyle='-' if norm else '--', label=label)
    axes.set_xticks(sorted({block for points in lines.values() for block, _ in points}))
    if published:
        block = parse_probe_name(published['probe']).block
        axes.plot([block], [published['mIoU']], marker='*', markersize=16, color='black', linestyle='none',
                  label=f'published {published["probe"]}: {published["mIoU"]}')
    axes.set_xlabel('block (0-based)')
    axes.set_ylabel('mIoU (%)')
    axes.set_title('Linear probes by block depth')
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
