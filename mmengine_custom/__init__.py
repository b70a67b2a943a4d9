"""OpenMMLab glue shared by ``mmseg_custom`` and ``mmdet_custom``: the compatibility workarounds for
this stack (applied on import, before any runner is built)."""
from . import compat

compat.apply()

__all__ = ['compat']
