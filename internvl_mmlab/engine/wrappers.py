"""mmengine's model wrapper for DDP, usable on the CPU (named by the ``_base_`` runtimes'
``model_wrapper_cfg``): mmengine's Runner passes ``device_ids=[LOCAL_RANK]``, which torch's
``DistributedDataParallel`` rejects for a module whose parameters are on the CPU (a gloo run)."""
from typing import Any

from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS
from torch import nn


@MODEL_WRAPPERS.register_module()
class CPUCompatibleDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` without ``device_ids`` / ``output_device`` for a CPU module."""

    def __init__(self, module: nn.Module, detect_anomalous_params: bool = False, **kwargs: Any) -> None:
        param = next(module.parameters(), None)
        if param is not None and param.device.type == 'cpu':
            kwargs.pop('device_ids', None)
            kwargs.pop('output_device', None)
        super().__init__(module=module, detect_anomalous_params=detect_anomalous_params, **kwargs)
