"""What the tools do, as functions: chat, zero-shot classification, retrieval, feature extraction."""
from .chat import load_chat_model, prepare_images
from .common import (DTYPES, USER_ERRORS, add_runtime_arguments, check_at_least, check_device, check_images,
                     check_model_folder, check_runtime_arguments, list_images, start_tool)
from .features import extract_features, save_features
from .zero_shot import (class_embeddings, encode_images, encode_texts, load_clip_model, read_lines,
                        retrieval_recall, zero_shot_predict)

__all__ = ['DTYPES', 'USER_ERRORS', 'add_runtime_arguments', 'check_at_least', 'check_device', 'check_images',
           'check_model_folder', 'check_runtime_arguments', 'class_embeddings', 'encode_images', 'encode_texts',
           'extract_features', 'list_images', 'load_chat_model', 'load_clip_model', 'prepare_images', 'read_lines',
           'retrieval_recall', 'save_features', 'start_tool', 'zero_shot_predict']
