"""The tokenizers of the published folders, loaded with transformers' own classes and no remote code.

Layouts:
- ``tokenizer.json`` (InternVL2/2.5 on Qwen2, Phi-3, Llama 3; transformers-native folders), or the
  vocabulary files of a tokenizer class transformers has (Qwen2's ``vocab.json`` + ``merges.txt``):
  transformers' ``AutoTokenizer`` with ``trust_remote_code=False``.
- a sentencepiece ``tokenizer.model`` with ``"tokenizer_class": "InternLM2Tokenizer"`` (InternVL-Chat on
  InternLM2; its ``auto_map`` points at remote code, with no fast twin) or ``"LlamaTokenizer"``
  (InternVL-14B, the C/G models): ``SentencePieceTokenizer`` below.

The original slow tokenizers (OpenGVLab's ``tokenization_internlm2.py``; transformers 4's
``LlamaTokenizer`` with ``legacy=True``) split the text at the added tokens and encode each piece with
sentencepiece on its own, so every piece gets sentencepiece's leading ``▁`` (and sentencepiece's own
whitespace normalisation). transformers 5's ``LlamaTokenizer`` is non-legacy and encodes leading
spaces and text after a special token differently (``" hi"``), so it is not used for them.
"""
import json
from pathlib import Path
from typing import Any, Optional

from transformers.tokenization_utils_sentencepiece import SentencePieceBackend

SENTENCEPIECE_CLASSES = ('InternLM2Tokenizer', 'LlamaTokenizer')


class TokenizerError(ValueError):
    """A model folder whose tokenizer is missing or in a layout this loader does not read."""


class SentencePieceTokenizer(SentencePieceBackend):
    """A slow sentencepiece tokenizer as InternLM2's and transformers 4's legacy ``LlamaTokenizer`` were:
    legacy encoding (each piece between added tokens through sentencepiece), bos prepended and eos
    appended per ``add_bos_token`` / ``add_eos_token`` (InternLM2: bos on, eos off), bos / eos / unk ids
    those of the sentencepiece model, pad ``</s>`` unless the folder names another.

    Decoding is InternLM2's: each run of ordinary pieces through sentencepiece (which turns byte pieces
    back into UTF-8 and drops the leading ``▁``), added tokens kept verbatim with a space before a run
    of them, then ``clean_up_tokenization`` (the original calls it unconditionally)."""

    def __init__(self, vocab_file: str, unk_token: str = '<unk>', bos_token: str = '<s>', eos_token: str = '</s>',
                 pad_token: Optional[str] = '</s>', add_bos_token: bool = True, add_eos_token: bool = False,
                 clean_up_tokenization_spaces: bool = False, **kwargs: Any) -> None:
        kwargs.pop('legacy', None)  # always legacy: the published ids
        kwargs.pop('special_tokens_pattern', None)
        kwargs.pop('auto_map', None)  # the remote classes this replaces
        self.add_bos_token, self.add_eos_token = add_bos_token, add_eos_token
        pattern = {(True, True): 'bos_eos', (True, False): 'bos', (False, True): 'eos', (False, False): 'none'}
        super().__init__(vocab_file=vocab_file, unk_token=unk_token, bos_token=bos_token, eos_token=eos_token,
                         pad_token=pad_token, legacy=True, add_bos_token=add_bos_token, add_eos_token=add_eos_token,
                         special_tokens_pattern=pattern[add_bos_token, add_eos_token],
                         clean_up_tokenization_spaces=clean_up_tokenization_spaces, **kwargs)

    @property
    def bos_token_id(self) -> Optional[int]:
        return self._model_id(self.sp_model.bos_id())

    @property
    def eos_token_id(self) -> Optional[int]:
        return self._model_id(self.sp_model.eos_id())

    @staticmethod
    def _model_id(index: int) -> Optional[int]:
        return None if index < 0 else index

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        special = set(self.all_special_tokens)
        out, run, prev_is_special = '', [], False
        for token in tokens:
            if token in special:
                if not prev_is_special:
                    out += ' '
                out += self.sp_model.decode(run) + token
                run, prev_is_special = [], True
            else:
                run.append(token)
                prev_is_special = False
        # the original then adds a prefix space and strips the first character: the two cancel
        return self.clean_up_tokenization(out + self.sp_model.decode(run))


def _tokenizer_config(folder: Path) -> dict:
    path = folder / 'tokenizer_config.json'
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding='utf-8'))
    except json.JSONDecodeError as e:
        raise TokenizerError(f'{path}: not valid JSON ({e})') from None


def _is_transformers_class(name: str) -> bool:
    """``name`` is a tokenizer class of transformers itself (its vocabulary files are then read by it)."""
    if not name:
        return False
    from transformers.models.auto.tokenization_auto import tokenizer_class_from_name
    return tokenizer_class_from_name(name) is not None


def check_tokenizer(path: str | Path) -> str:
    """The loader ``load_tokenizer`` will use for ``path`` ('sentencepiece' or 'auto'), checked without
    loading anything heavy; a ``TokenizerError`` naming the folder and what it lacks otherwise."""
    folder = Path(path)
    config = _tokenizer_config(folder)
    cls = config.get('tokenizer_class', '')
    if cls.removesuffix('Fast') in SENTENCEPIECE_CLASSES and (folder / 'tokenizer.model').is_file():
        return 'sentencepiece'
    if (folder / 'tokenizer.json').is_file() or _is_transformers_class(cls):  # e.g. Qwen2: vocab.json + merges.txt
        return 'auto'
    if (folder / 'tokenizer.model').is_file() or config.get('auto_map'):
        raise TokenizerError(f'{folder}: tokenizer class {cls or "(none named)"} is read here only from '
                             f'tokenizer.json, or from a sentencepiece tokenizer.model with tokenizer_class one of '
                             f'{list(SENTENCEPIECE_CLASSES)} (no remote code is run)')
    raise TokenizerError(f'{folder}: no tokenizer (expected tokenizer.json, or tokenizer.model with '
                         f'tokenizer_config.json)')


def load_tokenizer(path: str | Path) -> Any:
    """The folder's tokenizer through transformers' own classes, never its remote code (module doc)."""
    folder = Path(path)
    if check_tokenizer(folder) == 'sentencepiece':
        return SentencePieceTokenizer.from_pretrained(str(folder))
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)
