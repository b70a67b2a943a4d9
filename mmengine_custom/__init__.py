"""OpenMMLab glue shared by ``mmseg_custom`` and ``mmdet_custom``: the compatibility workarounds for
this stack (applied on import, before any runner is built) and the optimizer constructors."""
from . import compat

compat.apply()

from .optim import LayerDecayOptimWrapperConstructor  # noqa: E402

__all__ = ['compat', 'LayerDecayOptimWrapperConstructor']
