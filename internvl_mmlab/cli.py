"""What the OpenMMLab tools (``tools/train.py``, ``test.py``, ``infer.py``, ``check_dataset.py``, the
analysis tools) share: the config as the command line sets it, a clear check of the data folders and of
a checkpoint before anything is built, and the runner the config names."""
import argparse
import difflib
import logging
import os
import os.path as osp
import re
from typing import Optional

import torch
from mmengine.config import Config, ConfigDict, DictAction
from mmengine.logging import print_log
from mmengine.registry import RUNNERS, DefaultScope
from mmengine.runner import Runner

from internvl.checkpoint import CheckpointError, check_state_dict
from internvl.models import InternViT
from internvl.models.linear import set_cpu_linear_backend
from internvl.pos_embed import fit_pos_embed
from internvl.utils.dist import single_process_env

from .engine.checkpoint import load_local_checkpoint
from .engine.release import is_deepspeed_checkpoint
from .engine.runners import is_deepspeed_strategy
from .errors import DataRootError, ModelConfigError

TASKS = ('mmseg', 'mmdet')
DATA_LAYOUTS = {
    'mmseg': 'for ADE20K: the ADEChallengeData2016 folder with images/ and annotations/',
    'mmdet': 'for COCO: the folder with annotations/instances_{train,val}2017.json, train2017/ and val2017/',
}


def config_task(cfg: Config) -> str:
    """'mmseg' or 'mmdet': which OpenMMLab layer a config is for, from its ``default_scope``."""
    scope = cfg.get('default_scope')
    if scope not in TASKS:
        raise ValueError(f"config default_scope={scope!r}: expected one of {list(TASKS)} (inherit "
                         f"configs/_base_/seg_runtime.py for segmentation, det_runtime.py for detection)")
    return scope


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """--work-dir, --cfg-options, --launcher and --local_rank, as every OpenMMLab tool has them."""
    parser.add_argument('--work-dir', help='the dir to save logs, models and metrics')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value (xxx=yyy format)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--cpu', action='store_true',
                        help='run on the CPU on purpose: process groups use gloo (env_cfg.dist_cfg.backend)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_tool_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """The command line; also chooses the CPU linear back-end (``INTERNVL_CPU_LINEAR``, default 'auto')."""
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    set_cpu_linear_backend()
    return args


def check_cfg_options(cfg: Config, options: dict) -> None:
    """Refuse a ``--cfg-options`` key that is missing where the config has a key of a similar name (a
    typo would otherwise add a setting nothing reads), or that goes below a value that is not a dict or
    list. A new key with no similar neighbour (an argument the config leaves to its default, a new
    ``init_cfg``) is accepted."""
    for key in options:
        node, path = cfg._cfg_dict, []
        for part in key.split('.'):
            where = '.'.join(path) or 'the top level'
            if isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            elif isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, dict):
                close = difflib.get_close_matches(part, [str(k) for k in node], n=3, cutoff=0.75)
                if close:
                    raise ValueError(f'--cfg-options {key}: the config has no {part!r} under {where}; did you '
                                     f'mean {" or ".join(repr(c) for c in close)}?')
                break
            else:
                raise ValueError(f'--cfg-options {key}: {where} is {type(node).__name__} {node!r}, it has no '
                                 f'{part!r}')
            path.append(part)


def load_config(path: str, work_dir: Optional[str] = None, cfg_options: Optional[dict] = None,
                launcher: str = 'none', cpu: bool = False) -> Config:
    """The config of ``path`` with the command line's overrides; work_dir defaults to work_dirs/<name>.
    ``cpu``: process groups use gloo."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'config not found: {path}')
    cfg = Config.fromfile(path)
    if cfg_options:
        check_cfg_options(cfg, cfg_options)
        cfg.merge_from_dict(cfg_options)
    if cpu:
        cfg.merge_from_dict({'env_cfg.dist_cfg.backend': 'gloo'})
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


def wrapped_datasets(dataset_cfg: dict) -> list[dict]:
    """A dataset config and those it wraps (RepeatDataset, ConcatDataset, ...)."""
    inner = dataset_cfg.get('datasets') or ([dataset_cfg['dataset']] if 'dataset' in dataset_cfg else [])
    return [dataset_cfg] + [d for sub in inner for d in wrapped_datasets(sub)]


def check_data_roots(cfg: Config, loaders: tuple[str, ...]) -> None:
    """Fail early, naming the config key, when a dataset's folders or annotation files (the dataset's
    ``ann_file``, a COCO evaluator's ``ann_file``) are missing."""
    layout = DATA_LAYOUTS.get(cfg.get('default_scope'), 'the dataset folder')
    for loader in loaders:
        if not cfg.get(loader):
            continue
        for dataset in wrapped_datasets(cfg[loader]['dataset']):
            root = dataset.get('data_root')
            if root is None:
                continue
            key = f'{loader}.dataset.data_root'
            if not osp.isdir(root):
                raise DataRootError(
                    f'{dataset.get("type", "dataset")} not found: {key} = {root!r} does not exist '
                    f'(from {os.getcwd()}). Put the data there ({layout}), or point at it with '
                    f'--cfg-options {key}=/path/to/data (and the same for the other dataloaders).')
            for sub in (dataset.get('data_prefix') or {}).values():
                if sub and not osp.isdir(osp.join(root, sub)):
                    raise DataRootError(f'{key} = {root!r} has no folder {sub!r}: is it the right dataset root '
                                        f'({layout})?')
            ann_file = dataset.get('ann_file')
            if ann_file and not osp.isfile(osp.join(root, ann_file)):
                hint = ('few-shot lists are made by tools/make_fewshot_split.py' if cfg.get('default_scope') == 'mmseg'
                        else f'expected {layout}')
                raise DataRootError(f'{loader}.dataset.ann_file: {osp.join(root, ann_file)} does not exist; {hint}')
        _check_evaluator_files(cfg, loader.replace('dataloader', 'evaluator'))


def _check_evaluator_files(cfg: Config, key: str) -> None:
    evaluators = cfg.get(key) or []
    for evaluator in evaluators if isinstance(evaluators, list) else [evaluators]:
        ann_file = evaluator.get('ann_file')
        if ann_file and not osp.isfile(ann_file):
            raise DataRootError(f'{key}.ann_file: {ann_file} does not exist (it does not follow data_root: '
                                f'set it too, --cfg-options {key}.ann_file=/path/to/annotations.json)')


def build_model_on_meta(cfg: Config) -> torch.nn.Module:
    """``cfg.model`` built on the meta device (no memory, no weights read: seconds for the 6B). A bad
    argument is a ``ModelConfigError`` with the message of the module that refused it, without the
    registry's ``class `X` in module:`` prefixes."""
    from mmengine.registry import MODELS
    try:
        with torch.device('meta'), DefaultScope.overwrite_default_scope(config_task(cfg)):
            return MODELS.build(cfg.model)
    except (ValueError, KeyError, TypeError) as e:
        message = re.sub(r'^(class `\w+` in [\w.]+: )+', '', str(e).strip('"\''))
        raise ModelConfigError(f'model: {message}') from None


def verify_checkpoint(cfg: Config, checkpoint: str) -> bool:
    """Fail (``CheckpointError``) unless ``checkpoint`` holds exactly the weights of ``cfg.model``: the
    missing and unexpected keys and the shape mismatches are listed. The model is built on the meta
    device (no memory, no weights read); the checkpoint is read safely and memory-mapped, through the
    adapters of other code bases' layouts (``load_local_checkpoint``). A ``pos_embed`` of another square
    grid is resampled on load (logged here). True when the checkpoint lacks exactly the backbone's ViT,
    the config freezes it and ``model.backbone.pretrained`` names it (a release of a frozen backbone):
    load that too (``load_pretrained_backbone``)."""
    model = build_model_on_meta(cfg)
    ckpt = load_local_checkpoint(checkpoint, map_location='cpu', mmap=True)  # the runner reads it again
    state_dict = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
    state_dict = {re.sub(r'^module\.', '', k): v for k, v in state_dict.items()}  # as mmengine's loader
    source = f'{checkpoint} (for the model of the config)'
    _fit_pos_embeds(model, state_dict, source)
    expected = model.state_dict()
    missing, unexpected = check_state_dict(expected, state_dict, source, strict=False)
    vit_keys = {k for k in expected if k.startswith('backbone.vit.')}
    backbone = cfg.model.get('backbone') or {}
    pretrained = backbone.get('pretrained') if backbone.get('frozen') else None  # a trained ViT is the checkpoint's
    if missing and set(missing) == vit_keys and pretrained and not unexpected:
        print_log(f'{checkpoint}: holds no backbone ViT weights (a frozen backbone left out of the release): '
                  f'they are read from model.backbone.pretrained = {pretrained}', logger='current')
        return True
    if missing or unexpected:
        hint = ''
        if vit_keys and vit_keys <= set(missing) and not pretrained:
            hint = (' (the backbone ViT is missing: set model.backbone.pretrained to its checkpoint)'
                    if backbone.get('frozen') else ' (the backbone ViT is missing; the config trains it, so its '
                    'weights must come from this checkpoint)')
        raise CheckpointError(f'{source}: missing keys {missing}; unexpected keys {unexpected}{hint}')
    return False


def _fit_pos_embeds(model: torch.nn.Module, state_dict: dict, source: str) -> None:
    """Check a ``pos_embed`` of another grid as every InternViT's ``load_state_dict`` will resample it."""
    for name, module in model.named_modules():
        key = f'{name}.pos_embed'
        if isinstance(module, InternViT) and key in state_dict and state_dict[key].shape != module.pos_embed.shape:
            pos = state_dict[key]
            try:
                state_dict[key], grid = fit_pos_embed(pos.to('meta'), module.pretrain_grid, module.num_prefix_tokens,
                                                      f'{source}: {key}')
            except ValueError as e:
                raise CheckpointError(str(e)) from None
            if grid is not None:
                print_log(f'{key}: a {grid[0]}x{grid[1]} position grid, resampled (bicubic) to the '
                          f'{module.pretrain_grid[0]}x{module.pretrain_grid[1]} the config holds', logger='current')


def load_pretrained_backbone(model: torch.nn.Module) -> None:
    """Load ``model.backbone``'s own ``pretrained`` file (for a checkpoint without its frozen ViT); the
    model may be wrapped (DDP, a TTA model) any number of times."""
    while not hasattr(model, 'backbone') and hasattr(model, 'module'):
        model = model.module
    model.backbone.init_weights()


def checkpoint_exists(path: str) -> bool:
    """A checkpoint file, or a DeepSpeed checkpoint directory (released in memory when it is loaded)."""
    return os.path.isfile(path) or is_deepspeed_checkpoint(path)


def for_evaluation(cfg: Config) -> Config:
    """``cfg`` evaluated on the plain runner (``CrashSafeRunner``, mmengine's Runner): a DeepSpeed or FSDP
    ``strategy`` only trains (its optimizer sharding and loss scaling have nothing to do at test time),
    and the plain runner loads any checkpoint, a DeepSpeed directory included. The model keeps its own
    dtypes (fp32, a frozen ViT in ``backbone_dtype``)."""
    if cfg.get('strategy'):
        print_log(f"evaluating on the plain runner (strategy {cfg.strategy.get('type')} is for training)",
                  logger='current')
        cfg.strategy = None
        cfg.runner_type = 'CrashSafeRunner'
    return cfg


def apply_tta(cfg: Config) -> None:
    """``tools/test.py --tta``, as mmseg's and mmdet's test tools do it: the test data through the
    config's ``tta_pipeline``, the model wrapped in its ``tta_model``. A Mask R-CNN is refused: mmdet
    3.x merges boxes across augmentations but not instance masks (its ``DetTTAModel`` asserts so)."""
    if config_task(cfg) == 'mmdet' and (cfg.model.get('roi_head') or {}).get('mask_head'):
        raise ValueError('--tta: mmdet 3.x has no test-time augmentation for instance segmentation (DetTTAModel '
                         'merges boxes only), and this config is a Mask R-CNN')
    if cfg.model.get('type') == 'ProbeSweepSegmentor':
        raise ValueError('--tta: a probe sweep scores every probe single-scale in one pass; to test one probe with '
                         'TTA, train it alone (mmseg_custom.probing.lone_probe_config)')
    missing = [key for key in ('tta_model', 'tta_pipeline') if not cfg.get(key)]
    if missing:
        raise ValueError(f'--tta: the config defines no {" and no ".join(missing)} (the segmentation configs '
                         f'inherit them from configs/_base_/seg_runtime.py and their dataset _base_)')
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)


def apply_amp(cfg: Config, cuda: bool) -> str:
    """``tools/train.py --amp``: ``PortableAmpOptimWrapper`` (mmengine's ``AmpOptimWrapper``, autocast +
    loss scaling, which also runs on the CPU) in the dtype the task's kernels take, returned. On a GPU:
    fp16 for detection (the reference's precision; mmcv's RoIAlign and deformable-attention kernels take
    fp32 and fp16), bf16 for segmentation where the GPU has it (the reference's; fp16 otherwise); on the
    CPU: bf16 (autocast's CPU dtype). A dtype the config already gives ``optim_wrapper`` is kept. A
    DeepSpeed recipe is refused: its precision is its strategy's (``strategy.fp16`` / ``strategy.bf16``)."""
    if cfg.get('strategy') or cfg.optim_wrapper.get('type') == 'DeepSpeedOptimWrapper':
        raise ValueError('--amp does not apply to a DeepSpeed recipe: its precision is the strategy\'s '
                         '(strategy.fp16 / strategy.bf16, see configs/_base_/strategies/)')
    if cuda:
        bf16 = config_task(cfg) == 'mmseg' and torch.cuda.is_bf16_supported()
        dtype = 'bfloat16' if bf16 else 'float16'
    else:
        dtype = 'bfloat16'
    cfg.optim_wrapper.type = 'PortableAmpOptimWrapper'
    return cfg.optim_wrapper.setdefault('dtype', dtype)


def _log_short_runs(cfg: Config) -> None:
    """An iteration-based run shorter than its logger interval would log no training iteration at all
    (mmengine's LoggerHook logs every ``interval`` iterations only): log every tenth of the run instead."""
    train, logger = cfg.get('train_cfg') or {}, (cfg.get('default_hooks') or {}).get('logger')
    if not logger:  # no LoggerHook configured here
        return
    iterations, interval = train.get('max_iters'), logger.get('interval', 10)
    if 'IterBased' in str(train.get('type', '')) and iterations and iterations < interval:
        logger['interval'] = max(1, iterations // 10)
        print_log(f'logging every {logger["interval"]} iterations: the run has {iterations}, fewer than the '
                  f'logger interval {interval}', logger='current')


def build_runner(cfg: Config, console_summary: bool = True) -> Runner:
    """The runner the config names (``runner_type``; the runtimes' ``CrashSafeRunner`` builds mmengine's
    FlexibleRunner for a config with a ``strategy``), with its hooks, loops and strategy as the config
    declares them. A DeepSpeed run started without a launcher is a single-process group.
    ``console_summary=False``: the plain runner's setup summary goes to the log file only
    (``QuietSetupRunner``)."""
    _log_short_runs(cfg)
    if is_deepspeed_strategy((cfg.get('strategy') or {}).get('type')) and cfg.launcher == 'none':
        single_process_env()
        cfg.launcher = 'pytorch'
    if not console_summary and cfg.get('runner_type') == 'CrashSafeRunner' and not cfg.get('strategy'):
        cfg.runner_type = 'QuietSetupRunner'
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)
