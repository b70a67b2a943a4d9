"""The models shared by segmentation and detection, registered once in mmengine's root ``MODELS``: the
scoped registries of mmseg and mmdet search their parent when a name is not theirs, so
``type='InternViT'`` builds under either ``default_scope``."""
from mmengine.registry import MODELS

from internvl.checkpoint import register_arch_reader, register_prefix

from ..engine.checkpoint import backbone_from_run_config
from .backbone import InternViTBackbone
from .vit_adapter import InternViTAdapter

MODELS.register_module(name='InternViT', module=InternViTBackbone)
MODELS.register_module(name='InternViTAdapter', module=InternViTAdapter)

# A segmentor's or detector's checkpoint holds the core InternViT under the wrapper's attribute names, and
# its architecture in the run's config: ``pretrained=`` and the tools read the ViT from under them.
register_prefix('backbone.vit.', 'an mmengine model checkpoint (its backbone)')
register_prefix('backbone.', 'an mmengine model checkpoint (its backbone)')
register_arch_reader(backbone_from_run_config)

__all__ = ['InternViTAdapter', 'InternViTBackbone']
