"""Any supported InternViT checkpoint -> one safetensors file in this project's format
(``tools/convert_checkpoint.py``)."""
import json
import logging
import os
from typing import Any, Optional

from ..arch import ARCH_PRESETS, resolve_arch
from ..checkpoint import OUR_FORMAT, check_arch, check_state_dict, infer_arch, read_canonical, save_safetensors_atomic
from ..models.intern_vit import build_on_meta

logger = logging.getLogger(__name__)


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, arch: Optional[dict[str, Any]] = None,
                       trust_pickled_code: bool = False) -> dict[str, Any]:
    """Write any supported checkpoint as one safetensors file in this project's format.

    The arch is taken from ``arch``, else from the source's config.json, metadata or run config, else
    inferred from the tensor shapes; it is stored in the file's metadata (``arch``), with the options
    that change the ViT's output (``vit_options``: windowing and the cls token, as the source states
    them or its keys imply), which ``InternViT.from_pretrained`` applies. The keys and shapes are checked
    against an InternViT so built (on the meta device) before anything is written. Returns the arch.
    """
    ckpt, ckpt_arch = read_canonical(src, trust_pickled_code)
    arch = resolve_arch(arch or ckpt_arch or infer_arch(ckpt.state_dict, ARCH_PRESETS, str(src)))
    check_arch(arch, ckpt_arch, str(src))
    options = {'use_cls_token': 'cls_token' in ckpt.state_dict, **ckpt.options}
    check_state_dict(build_on_meta(arch, **options).state_dict(), ckpt.state_dict,
                     f'{src} ({ckpt.format.describe()})')
    metadata = {'format': OUR_FORMAT, 'arch': json.dumps(arch), 'vit_options': json.dumps(options),
                'source_format': ckpt.format.describe()}
    save_safetensors_atomic(ckpt.state_dict, dst, metadata)
    logger.info('wrote %s (%d tensors)', dst, len(ckpt.state_dict))
    return arch
