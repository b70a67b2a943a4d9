"""What the tools do, as functions: chat, zero-shot classification, retrieval, feature extraction,
checkpoint conversion. Each is imported on first use (chat and zero-shot load transformers)."""
import importlib
from typing import Any

_MODULES = {
    'chat': ('first_question', 'converse', 'load_chat_model', 'prepare_images'),
    'common': ('DTYPES', 'USER_ERRORS', 'add_runtime_arguments', 'check_at_least', 'check_device', 'check_images',
               'check_model_folder', 'check_runtime_arguments', 'list_images', 'start_tool'),
    'convert': ('convert_checkpoint',),
    'features': ('extract_features', 'save_features'),
    'zero_shot': ('class_embeddings', 'encode_images', 'encode_texts', 'load_clip_model', 'read_lines',
                  'retrieval_recall', 'zero_shot_predict'),
}
_LAZY = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f'.{_LAZY[name]}', __name__), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = sorted(_LAZY)
