"""The precision rule shared by the backbone and the segmentor: features reach each module in the
dtype of that module's own weights (which the strategy or optimizer wrapper chose)."""
from typing import Sequence

import torch
from torch import nn


def cast_to_consumer(features: Sequence[torch.Tensor], consumer: nn.Module) -> tuple[torch.Tensor, ...]:
    """``features`` cast to the dtype of ``consumer``'s first floating-point parameter (unchanged when it
    has none). Under autocast the consumer's ops choose their own precision as usual."""
    dtype = next((p.dtype for p in consumer.parameters() if p.is_floating_point()), None)
    return tuple(features) if dtype is None else tuple(f.to(dtype) for f in features)
