"""What ``tools/train.py`` and ``tools/test.py`` share: the config as the command line sets it, a
clear check of the data folders before anything is built, and the runner."""
import argparse
import os
import os.path as osp
from typing import Optional

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from internvl.utils.dist import single_process_env


class DataRootError(FileNotFoundError):
    """A dataset folder that is not there; the message says where it was expected and how to point at it."""


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """--work-dir, --cfg-options, --launcher and --local_rank, as every OpenMMLab tool has them."""
    parser.add_argument('--work-dir', help='the dir to save logs, models and metrics')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value (xxx=yyy format)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_tool_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def load_config(path: str, work_dir: Optional[str] = None, cfg_options: Optional[dict] = None,
                launcher: str = 'none') -> Config:
    """The config of ``path`` with the command line's overrides; work_dir defaults to work_dirs/<name>."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'config not found: {path}')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


def _datasets(dataset_cfg: dict) -> list[dict]:
    """A dataset config and those it wraps (RepeatDataset, ConcatDataset, ...)."""
    inner = dataset_cfg.get('datasets') or ([dataset_cfg['dataset']] if 'dataset' in dataset_cfg else [])
    return [dataset_cfg] + [d for sub in inner for d in _datasets(sub)]


def check_data_roots(cfg: Config, loaders: tuple[str, ...]) -> None:
    """Fail early, naming the config key, when a dataset's folders or ann_file are missing."""
    for loader in loaders:
        if not cfg.get(loader):
            continue
        for dataset in _datasets(cfg[loader]['dataset']):
            root = dataset.get('data_root')
            if root is None:
                continue
            key = f'{loader}.dataset.data_root'
            if not osp.isdir(root):
                raise DataRootError(
                    f'{dataset.get("type", "dataset")} not found: {key} = {root!r} does not exist '
                    f'(from {os.getcwd()}). Put the data there (for ADE20K: the ADEChallengeData2016 folder '
                    f'with images/ and annotations/), or point at it with '
                    f'--cfg-options {key}=/path/to/data (and the same for the other dataloaders).')
            for sub in (dataset.get('data_prefix') or {}).values():
                if sub and not osp.isdir(osp.join(root, sub)):
                    raise DataRootError(f'{key} = {root!r} has no folder {sub!r}: is it the right dataset root?')
            ann_file = dataset.get('ann_file')
            if ann_file and not osp.isfile(osp.join(root, ann_file)):
                raise DataRootError(f'{loader}.dataset.ann_file: {osp.join(root, ann_file)} does not exist; '
                                    f'few-shot lists are made by tools/make_fewshot_split.py')


def build_runner(cfg: Config) -> Runner:
    """mmengine's FlexibleRunner when the config sets a ``strategy`` (DeepSpeed, FSDP), else the Runner."""
    if not cfg.get('strategy'):
        return Runner.from_cfg(cfg)
    from mmengine.runner import FlexibleRunner
    strategy_type = cfg.strategy['type']
    strategy_name = strategy_type if isinstance(strategy_type, str) else strategy_type.__name__
    if strategy_name == 'DeepSpeedStrategy' and cfg.launcher == 'none':
        single_process_env()
        cfg.launcher = 'pytorch'
    return FlexibleRunner.from_cfg(cfg)
