"""``ProbeSweepHead``: K independent linear probes, a grid of (block, lr, weight decay, norm), that read
the frozen backbone's maps of ONE forward pass.

Each probe is the published ``LinearProbeHead`` (BN + 1x1 conv, or the plain conv with ``norm=False``)
bound to one tapped block, with its own loss, its own BN statistics and its own optimizer settings,
which ``ProbeSweepOptimWrapperConstructor`` turns into its own parameter groups. Nothing is shared but
the input: a probe's initialisation comes from its own seed (``probe_seed``: a function of the sweep's
``seed`` and the probe's name, not of the order of the grid), there is no dropout (it would draw all
probes' masks from one generator), and gradient clipping is per probe (``ProbeSweepOptimWrapper``).
So each probe trains exactly as it would alone, with the same seed, data and schedule.

Names: ``b{block}_lr{lr}`` plus ``_wd{wd}`` for a non-zero weight decay and ``_nobn`` for the plain conv,
numbers written without a dot (``4e-05``, ``16e-05`` for 1.6e-4): ``b44_lr4e-05``, ``b44_lr4e-05_nobn``.
"""
import itertools
import re
import zlib
from typing import Iterator, NamedTuple, Sequence

from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import Tensor, nn

from ..models.decode_heads import LinearProbeHead


class ProbeSetting(NamedTuple):
    block: int
    lr: float
    weight_decay: float
    norm: bool


def short_number(value: float) -> str:
    """A float in scientific notation with an integer mantissa and no dot: 4e-05, 16e-05, 5e-02, 0."""
    if value == 0:
        return '0'
    mantissa, exponent = f'{value:.6e}'.split('e')
    digits = mantissa.rstrip('0').rstrip('.')
    whole, _, fraction = digits.partition('.')
    return f'{whole}{fraction}e{int(exponent) - len(fraction):+03d}'.replace('+', '')


def probe_name(setting: ProbeSetting) -> str:
    name = f'b{setting.block}_lr{short_number(setting.lr)}'
    if setting.weight_decay:
        name += f'_wd{short_number(setting.weight_decay)}'
    return name if setting.norm else name + '_nobn'


NAME = re.compile(r'^b(\d+)_lr([\de+-]+)(?:_wd([\de+-]+))?(_nobn)?$')


def parse_probe_name(name: str) -> ProbeSetting:
    """The setting ``probe_name`` wrote into ``name``."""
    match = NAME.match(name)
    if not match:
        raise ValueError(f'{name!r} is not a probe name (b<block>_lr<lr>[_wd<wd>][_nobn])')
    block, lr, wd, plain = match.groups()
    return ProbeSetting(int(block), float(lr), float(wd or 0), not plain)


def probe_grid(blocks: Sequence[int], lrs: Sequence[float], weight_decays: Sequence[float] = (0.0,),
               norm: Sequence[bool] = (True,)) -> list[ProbeSetting]:
    """Every combination, block-major (the order of the head's probes)."""
    return [ProbeSetting(int(block), float(lr), float(wd), bool(with_norm))
            for block, lr, wd, with_norm in itertools.product(blocks, lrs, weight_decays, norm)]


def probe_seed(seed: int, name: str) -> int:
    """The initialisation seed of the probe ``name`` in a sweep seeded with ``seed`` (to train one probe
    alone as it trains in the sweep: ``LinearProbeHead(init_seed=probe_seed(seed, name))``)."""
    return zlib.crc32(f'{seed}/{name}'.encode()) & 0x7FFFFFFF


@MODELS.register_module()
class ProbeSweepHead(BaseModule):
    """The grid: every combination of ``blocks`` x ``lrs`` x ``weight_decays`` x ``norm``. ``blocks`` are
    the backbone's ``out_indices`` in the same order (the segmentor checks it). Other keyword arguments
    (``loss_decode``, ``ignore_index``, ``align_corners``, ``norm_cfg``, ...) go to every probe.
    ``checkpoint_loss``: each probe recomputes its full-resolution logits in the backward pass instead of
    keeping them (``LinearProbeHead``): the 6B recipes' 120 probes would keep ~1 GB each at batch 2; the
    price is one more upsampling and cross-entropy forward per probe and step."""

    def __init__(self, in_channels: int, num_classes: int, blocks: Sequence[int], lrs: Sequence[float],
                 weight_decays: Sequence[float] = (0.0,), norm: Sequence[bool] = (True,), seed: int = 0,
                 checkpoint_loss: bool = False, init_cfg=None, **probe_kwargs) -> None:
        super().__init__(init_cfg)
        for key in ('in_index', 'input_transform', 'with_norm', 'init_seed'):
            if key in probe_kwargs:
                raise ValueError(f'ProbeSweepHead: {key!r} is set per probe by the sweep, not in the config')
        if probe_kwargs.get('dropout_ratio', 0.0):
            raise ValueError('ProbeSweepHead: dropout_ratio must be 0 (the probes would draw their dropout masks '
                             'from one generator, so a probe would not train as it does alone)')
        self.blocks = [int(b) for b in blocks]
        if not self.blocks or not lrs or len(set(self.blocks)) != len(self.blocks):
            raise ValueError(f'ProbeSweepHead: blocks {list(blocks)} must be non-empty and distinct, lrs {list(lrs)} '
                             f'non-empty')
        self.seed = seed
        self.settings: dict[str, ProbeSetting] = {}
        probes = {}
        for setting in probe_grid(self.blocks, lrs, weight_decays, norm):
            name = probe_name(setting)
            if name in probes:
                raise ValueError(f'ProbeSweepHead: the grid holds probe {name} twice')
            self.settings[name] = setting
            probes[name] = LinearProbeHead(in_channels, num_classes=num_classes, in_index=self.blocks.index(setting.block),
                                           with_norm=setting.norm, init_seed=probe_seed(seed, name),
                                           checkpoint_loss=checkpoint_loss, **probe_kwargs)
        self.probes = nn.ModuleDict(probes)
        first = next(iter(probes.values()))
        # what mmseg's EncoderDecoder reads from its decode head
        self.num_classes, self.out_channels = first.num_classes, first.out_channels
        self.align_corners, self.ignore_index = first.align_corners, first.ignore_index

    def init_weights(self) -> None:
        """Each probe's own (seeded) initialisation: mmengine's recursion stops at the ModuleDict."""
        super().init_weights()
        for probe in self.probes.values():
            probe.init_weights()

    def __len__(self) -> int:
        return len(self.probes)

    def items(self) -> Iterator[tuple[str, LinearProbeHead]]:
        return iter(self.probes.items())

    def loss(self, inputs: tuple[Tensor, ...], batch_data_samples: list, train_cfg: dict) -> dict:
        """Every probe's losses (and accuracy) under ``<name>.``: their sum is what backward sees, and each
        probe's parameters receive the gradient of its own loss only."""
        losses = {}
        for name, probe in self.probes.items():
            losses.update({f'{name}.{key}': value for key, value in probe.loss(inputs, batch_data_samples,
                                                                                train_cfg).items()})
        return losses

    def forward(self, inputs: tuple[Tensor, ...]) -> dict[str, Tensor]:
        return {name: probe(inputs) for name, probe in self.probes.items()}
