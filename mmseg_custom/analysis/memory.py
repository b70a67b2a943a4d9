"""Memory planning for training a config's model, plain or under DeepSpeed ZeRO
(``tools/analysis/estimate_memory.py``).

Model states per GPU, from what the strategy says:
- weights: the bytes of each parameter in training (2 when DeepSpeed's bf16/fp16 casts the module,
  else the parameter's own dtype: a frozen bf16 backbone 2, fp32 weights 4); frozen parameters count
  as weights only;
- gradients: trainable parameters only, in the weights' dtype;
- optimizer: per trainable parameter 16 bytes under ZeRO or DeepSpeed half precision (fp32 master
  weight, fp32 gradient partition, Adam m and v: DeepSpeed's own accounting), 8 without them (Adam m
  and v beside fp32 weights and gradients: plain DDP, or ZeRO-0 in fp32);
- sharding: ZeRO-1 shards the optimizer, 2 the gradients too, 3 the weights too (the largest layer
  gathered whole, its weights and gradients); optimizer offload moves the optimizer to CPU memory;
- communication buckets: ZeRO-1/2 keep ``reduce_bucket_size`` + ``allgather_bucket_size`` elements in
  the gradient dtype, 4.5 times that with ``overlap_comm`` (DeepSpeed's documentation: 5e8 each in
  16-bit with overlap_comm is a 9 GB footprint); ZeRO-3 keeps a reduce bucket and
  ``stage3_prefetch_bucket_size`` elements of prefetched weights.
For bf16 without frozen parameters or buckets this is exactly DeepSpeed's
``estimate_zero2_model_states_mem_needs`` / ``estimate_zero3_model_states_mem_needs``.

Activations are measured, not guessed: one training step of depth-reduced copies of the model (1 and
2 blocks) under torch's MemTracker gives the heads' and one block's share, which scale linearly with
the depth, the batch and the number of pixels.
"""
import copy
import math
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn

from internvl_mmlab.engine.runners import is_deepspeed_strategy

GIB = 2 ** 30
DEEPSPEED_BUCKET_DEFAULTS = dict(reduce_bucket_size=5e8, allgather_bucket_size=5e8, overlap_comm=False,
                                 stage3_prefetch_bucket_size=5e7)


@dataclass(frozen=True)
class Precision:
    """Bytes per parameter: ``weights``/``grads`` of trainable ones, ``frozen`` weights, ``optimizer``
    state per trainable one."""
    weights: float
    grads: float
    frozen: float
    optimizer: float
    name: str = ''


@dataclass(frozen=True)
class Buckets:
    """DeepSpeed's communication buffers, in elements (see the module docstring)."""
    reduce: float = 0.0
    allgather: float = 0.0
    overlap_comm: bool = False
    prefetch: float = 0.0


@dataclass
class ModelStates:
    """Per-GPU bytes of one setting; ``cpu`` holds what offloading moves to host memory (per node)."""
    params: float
    grads: float
    optimizer: float
    buckets: float = 0.0
    cpu: float = 0.0

    @property
    def gpu_total(self) -> float:
        return self.params + self.grads + self.optimizer + self.buckets


BF16_ZERO = Precision(weights=2, grads=2, frozen=2, optimizer=16, name='bf16')


def model_state_bytes(trainable: int, frozen: int, stage: int, gpus: int, precision: Precision = BF16_ZERO,
                      offload_optimizer: bool = False, gpus_per_node: int = 8, largest_layer_params: int = 0,
                      buckets: Buckets = Buckets()) -> ModelStates:
    """Weights, gradients, optimizer states and communication buckets per GPU (module docstring)."""
    if stage not in (0, 1, 2, 3):
        raise ValueError(f'ZeRO stage {stage}: expected 0, 1, 2 or 3')
    weights = precision.weights * trainable + precision.frozen * frozen
    if stage == 3:
        params = weights / gpus + precision.weights * largest_layer_params
        grads = precision.grads * largest_layer_params
        comm = buckets.reduce * precision.grads + buckets.prefetch * precision.weights
        if offload_optimizer:  # per node: fp32 master, m, v and gradient of the node's share
            nodes = math.ceil(gpus / gpus_per_node)
            return ModelStates(params, grads, 0.0, comm, cpu=precision.optimizer * trainable / nodes * 1.5)
        return ModelStates(params, grads, precision.optimizer * trainable / gpus, comm)
    comm = 0.0
    if stage:
        comm = (buckets.reduce + buckets.allgather) * precision.grads * (4.5 if buckets.overlap_comm else 1.0)
    if offload_optimizer:
        if stage == 0:
            raise ValueError('optimizer offload needs ZeRO stage 1, 2 or 3')
        return ModelStates(weights, 0.0, 0.0, comm, cpu=trainable * max(4 * gpus, 16) * 1.5)
    grads = precision.grads * trainable / (gpus if stage == 2 else 1)
    return ModelStates(weights, grads, precision.optimizer * trainable / (gpus if stage else 1), comm)


def strategy_settings(cfg: Any) -> tuple[int, bool, bool, Buckets]:
    """(ZeRO stage, DeepSpeed half precision, optimizer offload, buckets) of a config; a config without
    a DeepSpeed strategy is stage 0 without buckets."""
    strategy = cfg.get('strategy') or {}
    if not is_deepspeed_strategy(strategy.get('type')):
        return 0, False, False, Buckets()
    zero = {**DEEPSPEED_BUCKET_DEFAULTS, **(strategy.get('zero_optimization') or {})}
    half = any((strategy.get(k) or {}).get('enabled', False) for k in ('bf16', 'fp16'))
    buckets = Buckets(float(zero['reduce_bucket_size']), float(zero['allgather_bucket_size']),
                      bool(zero['overlap_comm']), float(zero['stage3_prefetch_bucket_size']))
    return int(zero.get('stage', 0)), half, 'offload_optimizer' in zero, buckets


def parameter_counts(model: nn.Module) -> tuple[int, int, float, float, int]:
    """(trainable, frozen, bytes per trainable weight, bytes per frozen weight, largest layer) of a
    model built as it trains (e.g. on the meta device, the backbone's dtype applied)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    frozen = [p for p in model.parameters() if not p.requires_grad]

    def mean_bytes(params: list) -> float:
        count = sum(p.numel() for p in params)
        return sum(p.numel() * p.element_size() for p in params) / count if count else 4.0

    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())
    return (sum(p.numel() for p in trainable), sum(p.numel() for p in frozen), mean_bytes(trainable),
            mean_bytes(frozen), largest)


def training_precision(trainable_bytes: float, frozen_bytes: float, stage: int, half: bool) -> Precision:
    """Bytes per parameter in training, from the model's own (``parameter_counts``): DeepSpeed half
    precision casts everything to 2 bytes and keeps 16 of optimizer state; otherwise each parameter
    keeps its own dtype, and the optimizer holds 16 bytes under ZeRO (fp32 master copy and gradient
    partition) or 8 (Adam m and v) without it."""
    if half:
        return Precision(2, 2, 2, 16, name='bf16 (DeepSpeed)')
    name = 'fp32' if trainable_bytes == 4 else f'{trainable_bytes:g} B/weight'
    if frozen_bytes != 4:
        name += f', frozen {frozen_bytes:g} B/weight'
    return Precision(trainable_bytes, trainable_bytes, frozen_bytes, 16 if stage else 8, name=name)


@dataclass
class ActivationProfile:
    """Activation bytes of one training step per image, in fp32, measured at ``pixels`` input pixels."""
    per_block: float  # one backbone block (0 for a frozen backbone: no_grad stores nothing)
    rest: float  # embeddings, FPN, heads, losses
    block_input: float  # one block's input [1, N, C], what activation checkpointing keeps per block
    pixels: int

    def scaled(self, depth: int, batch: int, pixels: int, with_cp: bool, bytes_per_value: int = 4) -> float:
        """Bytes for the full depth, a batch, an input of ``pixels``, and the compute dtype's size."""
        factor = batch * pixels / self.pixels * bytes_per_value / 4
        blocks = depth * self.block_input + self.per_block if with_cp and self.per_block else depth * self.per_block
        return factor * (blocks + self.rest)


def depth_reduced(model_cfg: dict, depth: int) -> dict:
    """The segmentor config with an InternViT backbone of ``depth`` blocks, every tap on the last block,
    computing in fp32 (activations are measured in fp32 and scaled to the compute dtype)."""
    from internvl.arch import resolve_arch
    cfg = copy.deepcopy(model_cfg)
    backbone = cfg['backbone']
    arch = resolve_arch(backbone['arch'])
    arch['num_layers'] = depth
    backbone.update(arch=arch, out_indices=[depth - 1] * len(backbone['out_indices']), pretrained=None,
                    with_cp=False, backbone_dtype='float32')
    return cfg


def measure_activations(build_model, model_cfg: dict, size: int, num_classes: int) -> ActivationProfile:
    """Training-step activations per image of 1- and 2-block copies of a segmentor config at ``size`` x
    ``size``: what the forward pass leaves for the backward (the step's activation peak; gradients come
    after), at batch 2 (BatchNorm of the pooled context branch needs more than one value).

    Measured on the meta device: MemTracker counts the storages autograd keeps without any arithmetic
    (seconds for the 6B width, where real tensors take minutes). The loss is each head's logits resized
    to the input and a cross-entropy, as mmseg's heads compute it (its accuracy metric indexes by a
    mask, which the meta device cannot)."""
    import torch.nn.functional as F
    from torch.distributed._tools.mem_tracker import MemTracker
    measured = {}
    for depth in (1, 2):
        with torch.device('meta'):
            model = build_model(depth_reduced(model_cfg, depth))
        model.train()
        # MemTracker hooks every parameter's gradient; a frozen backbone still runs without autograd
        # (its ``frozen`` flag), so it keeps no activations either way.
        model.requires_grad_(True)
        inputs = torch.randn(2, 3, size, size, device='meta')
        labels = torch.randint(0, num_classes, (2, size, size), device='meta')
        heads = [model.decode_head] + ([model.auxiliary_head] if getattr(model, 'with_auxiliary_head', False) else [])
        tracker = MemTracker()
        tracker.track_external(model, inputs)  # counted before the snapshot: the deltas are activations
        with tracker:
            before = tracker.get_tracker_snapshot('current')[inputs.device]['Total']
            features = model.extract_feat(inputs)
            loss = sum(F.cross_entropy(F.interpolate(head(features), size=(size, size), mode='bilinear'), labels)
                       for head in heads)
            measured[depth] = (tracker.get_tracker_snapshot('current')[inputs.device]['Total'] - before) / 2
            loss.backward()
    vit = model.backbone.vit
    tokens = 1 + (size // vit.patch_size) ** 2
    per_block = max(measured[2] - measured[1], 0)
    return ActivationProfile(per_block=per_block, rest=measured[1] - per_block, block_input=4 * tokens * vit.embed_dims,
                             pixels=size * size)


# A plan fits when it leaves this share of the GPU free: the CUDA context, the allocator's fragmentation
# and the transient buffers of the heads' losses are not modelled.
HEADROOM = 0.10


@dataclass
class Plan:
    """The per-GPU memory of training one config on ``gpus`` GPUs of ``gpu_mem`` GiB."""
    stage: int
    offload: bool
    precision: Precision
    states: ModelStates
    activations: float
    gpu_mem: float

    @property
    def total(self) -> float:
        return self.states.gpu_total + self.activations

    @property
    def fits(self) -> bool:
        return self.total <= (1 - HEADROOM) * self.gpu_mem * GIB


def plan_config(cfg: Any, gpus: int = 8, gpu_mem: float = 80, gpus_per_node: int = 8, measure_size: int = 252,
                stage: Optional[int] = None, offload: Optional[bool] = None,
                activation_cache: Optional[dict] = None) -> Plan:
    """Plan a segmentation config with an InternViT backbone as it is (its strategy's stage, precision, offload and buckets), or at
    another ``stage`` / ``offload``. The model is built on the meta device; activations are measured on
    depth-reduced copies (``activation_cache``, keyed by the model config, saves re-measuring)."""
    if cfg.get('default_scope') != 'mmseg':
        raise ValueError(f"the memory planner covers segmentation configs (default_scope 'mmseg'), not "
                         f"{cfg.get('default_scope')!r} ones")
    if cfg.model.backbone.type != 'InternViT':
        raise ValueError(f"the memory planner models the InternViT backbone, not {cfg.model.backbone.type!r} "
                         f"(its activations do not scale with depth alone)")
    from mmseg.registry import MODELS
    cfg_stage, half, cfg_offload, buckets = strategy_settings(cfg)
    stage = cfg_stage if stage is None else stage
    offload = cfg_offload if offload is None else offload
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    if hasattr(model.backbone, 'apply_backbone_dtype'):
        model.backbone.apply_backbone_dtype()  # a frozen backbone is stored in backbone_dtype once loaded
    trainable, frozen, trainable_bytes, frozen_bytes, largest = parameter_counts(model)
    precision = training_precision(trainable_bytes, frozen_bytes, stage, half)
    states = model_state_bytes(trainable, frozen, stage, gpus, precision, offload, gpus_per_node, largest, buckets)
    key = repr(depth_reduced(cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else cfg.model, 1))
    cache = activation_cache if activation_cache is not None else {}
    if key not in cache:
        cache[key] = measure_activations(MODELS.build, cfg.model, measure_size, cfg.model.decode_head.num_classes)
    backbone = model.backbone.vit
    crop = cfg.model.data_preprocessor.size
    bf16_compute = half or cfg.model.backbone.get('backbone_dtype', 'float32') == 'bfloat16'
    activations = cache[key].scaled(backbone.num_layers, cfg.train_dataloader.batch_size, crop[0] * crop[1],
                                    backbone.with_cp, 2 if bf16_compute else 4)
    return Plan(stage, offload, precision, states, activations, gpu_mem)


TABLE_HEADER = ('| config | ZeRO | precision | weights + grads + optimizer | buckets | activations | per GPU | fits |\n'
                '|---|---|---|---|---|---|---|---|')


def table_row(config_name: str, plan: Plan) -> str:
    """One markdown row of the README's planner table (GiB per GPU)."""
    s = plan.states
    verdict = 'yes' if plan.fits else 'NO'
    return (f'| `{config_name}` | {plan.stage}{" + offload" if plan.offload else ""} | {plan.precision.name} | '
            f'{(s.params + s.grads + s.optimizer) / GIB:.1f} | {s.buckets / GIB:.1f} | {plan.activations / GIB:.1f} | '
            f'{plan.total / GIB:.1f} | {verdict} |')
