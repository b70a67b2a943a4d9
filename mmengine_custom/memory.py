"""Memory planning for training a config's model under DeepSpeed ZeRO (``tools/analysis/estimate_memory.py``).

Model states follow DeepSpeed's own estimators (``estimate_zero2_model_states_mem_needs`` and the
stage-3 one): bf16 weights (2 bytes) and gradients (2), and 16 bytes per trainable parameter of
optimizer state (fp32 master weight, Adam m and v, fp32 gradient partition). Frozen parameters count
as weights only. Activations are measured, not guessed: one training step of depth-reduced copies of
the model (1 and 2 blocks) under torch's MemTracker gives the heads' and one block's share, which
scale linearly with the depth, the batch and the number of pixels.
"""
import copy
import math
from dataclasses import dataclass

import torch

@dataclass
class ModelStates:
    """Per-GPU bytes of one ZeRO setting; ``cpu`` holds what offloading moves to host memory (per node)."""
    params: float
    grads: float
    optimizer: float
    cpu: float = 0.0

    @property
    def gpu_total(self) -> float:
        return self.params + self.grads + self.optimizer


def model_state_bytes(total_params: int, trainable_params: int, stage: int, gpus: int,
                      offload_optimizer: bool = False, gpus_per_node: int = 8,
                      largest_layer_params: int = 0) -> ModelStates:
    """Weights (bf16), gradients (bf16) and optimizer states (fp32 master + Adam m, v + fp32 gradient
    partition: 16 bytes per trainable parameter) per GPU, as DeepSpeed's estimators account them.

    Stage 0: nothing sharded. 1: optimizer states sharded. 2: and the bf16 gradients. 3: and the
    weights, the largest layer gathered whole (its weights and gradients: DeepSpeed's 4 bytes per
    parameter of the largest layer). Offload moves the optimizer states and step to CPU
    memory (``cpu``: per node, with DeepSpeed's 1.5 buffer factor).
    """
    if stage in (0, 1, 2):
        if offload_optimizer:
            return ModelStates(params=2 * total_params, grads=0.0, optimizer=0.0,
                               cpu=trainable_params * max(4 * gpus, 16) * 1.5)
        shards = gpus if stage else 1
        grads = 2 * trainable_params / (gpus if stage == 2 else 1)
        return ModelStates(params=2 * total_params, grads=grads, optimizer=16 * trainable_params / shards)
    if stage == 3:
        # bf16 weights sharded, plus the largest layer's weights gathered whole; its bf16 gradients are
        # reduce-scattered into the fp32 partitions layer by layer, so only one layer's exist at a time.
        params, grads = 2 * total_params / gpus + 2 * largest_layer_params, 2 * largest_layer_params
        if offload_optimizer:  # per node: fp32 master, m, v and gradient of the node's share
            nodes = math.ceil(gpus / gpus_per_node)
            return ModelStates(params=params, grads=grads, optimizer=0.0, cpu=16 * trainable_params / nodes * 1.5)
        return ModelStates(params=params, grads=grads, optimizer=16 * trainable_params / gpus)
    raise ValueError(f'ZeRO stage {stage}: expected 0, 1, 2 or 3')


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
    """The segmentor config with an InternViT backbone of ``depth`` blocks, every tap on the last block."""
    from internvl.models import resolve_arch
    cfg = copy.deepcopy(model_cfg)
    backbone = cfg['backbone']
    arch = resolve_arch(backbone['arch'])
    arch['num_layers'] = depth
    backbone.update(arch=arch, out_indices=[depth - 1] * len(backbone['out_indices']), pretrained=None,
                    with_cp=False)
    return cfg


def measure_activations(build_model, model_cfg: dict, size: int, num_classes: int) -> ActivationProfile:
    """Training-step activations per image of 1- and 2-block copies of a segmentor config at ``size`` x
    ``size``: what the forward pass leaves for the backward (the step's activation peak; gradients come
    after), measured at batch 2 (BatchNorm of the pooled context branch needs more than one value)."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    from torch.distributed._tools.mem_tracker import MemTracker
    measured = {}
    for depth in (1, 2):
        model = build_model(depth_reduced(model_cfg, depth))
        model.train()
        inputs = torch.randn(2, 3, size, size)
        samples = []
        for _ in range(2):
            sample = SegDataSample(gt_sem_seg=PixelData(data=torch.randint(0, num_classes, (1, size, size))))
            sample.set_metainfo(dict(img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size)))
            samples.append(sample)
        tracker = MemTracker()
        tracker.track_external(model, inputs)
        with tracker:
            before = tracker.get_tracker_snapshot('current')[inputs.device]['Total']
            loss, _ = model.parse_losses(model(inputs, samples, mode='loss'))
            measured[depth] = (tracker.get_tracker_snapshot('current')[inputs.device]['Total'] - before) / 2
            loss.backward()
    vit = model.backbone.vit
    tokens = 1 + (size // vit.patch_size) ** 2
    per_block = max(measured[2] - measured[1], 0)
    return ActivationProfile(per_block=per_block, rest=measured[1] - per_block, block_input=4 * tokens * vit.embed_dims,
                             pixels=size * size)
