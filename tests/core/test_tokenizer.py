"""The published tokenizer layouts load with transformers' own classes and no remote code, and give the
original slow tokenizers' ids: checked against sentencepiece itself on the same tokenizer.model."""
import json
import re

import pytest
import sentencepiece as spm

from internvl.models import TokenizerError, load_tokenizer
from internvl.testing import make_native_chat_folder, make_sentencepiece_tokenizer

# Chinese, an emoji in the corpus and one outside it (byte fallback), leading and double spaces,
# newlines, text right after special tokens, the chat template's tokens and the image tokens
TEXT = ('  leading spaces<|im_start|>user\n<img><IMG_CONTEXT><IMG_CONTEXT></img>\n你好，世界 🙂 🐼  two  spaces'
        '<|im_end|>\n<|im_start|>assistant\n hi<|im_end|>')


def reference_ids(folder, text: str, add_eos: bool) -> list[int]:
    """The original slow tokenizer, spelled out: split at the added tokens (longest first), encode each
    piece of text with sentencepiece on its own, added tokens by their ids; bos first, eos if asked."""
    sp = spm.SentencePieceProcessor(model_file=str(folder / 'tokenizer.model'))
    added = {t['content']: int(i) for i, t in json.loads((folder / 'tokenizer_config.json').read_text())[
        'added_tokens_decoder'].items()}
    pattern = '(' + '|'.join(re.escape(t) for t in sorted(added, key=len, reverse=True)) + ')'
    ids = [sp.bos_id()]
    for piece in re.split(pattern, text):
        if piece in added:
            ids.append(added[piece])
        elif piece:
            ids += sp.encode(piece)
    return ids + [sp.eos_id()] * add_eos


@pytest.fixture(scope='module', params=[('InternLM2Tokenizer', False), ('LlamaTokenizer', True)],
                ids=['internlm2', 'internvl-14b-llama'])
def published(request, tmp_path_factory):
    cls, add_eos = request.param
    folder = tmp_path_factory.mktemp(cls)
    make_sentencepiece_tokenizer(folder, cls, add_eos_token=add_eos)
    return folder, add_eos


def test_the_folder_is_the_published_layout(published):
    folder, _ = published
    assert sorted(p.name for p in folder.iterdir()) == ['tokenizer.model', 'tokenizer_config.json']
    config = json.loads((folder / 'tokenizer_config.json').read_text())
    if config['tokenizer_class'] == 'InternLM2Tokenizer':  # remote code, no fast twin
        assert config['auto_map']['AutoTokenizer'][1] is None


def test_ids_are_the_original_tokenizers(published):
    folder, add_eos = published
    tokenizer = load_tokenizer(folder)
    expected = reference_ids(folder, TEXT, add_eos)
    assert tokenizer(TEXT).input_ids == expected
    assert '<0xF0>' in tokenizer.convert_ids_to_tokens(expected)  # the panda went through byte fallback
    for text in (' hi', 'hi', '  hi', '<|im_end|> hi', '\n', ''):  # where non-legacy tokenizers differ
        assert tokenizer(text).input_ids == reference_ids(folder, text, add_eos), repr(text)
    assert tokenizer(TEXT, add_special_tokens=False).input_ids == expected[1:len(expected) - add_eos]


def test_special_ids_and_decoding(published):
    folder, _ = published
    tokenizer = load_tokenizer(folder)
    sp = spm.SentencePieceProcessor(model_file=str(folder / 'tokenizer.model'))
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (sp.bos_id(), sp.eos_id(), 0)
    assert tokenizer.convert_tokens_to_ids('<IMG_CONTEXT>') >= sp.get_piece_size()  # added after the vocabulary
    assert tokenizer.convert_tokens_to_ids('<|im_end|>') < sp.get_piece_size()  # in InternLM2's vocabulary
    ids = tokenizer(TEXT).input_ids
    plain = [i for i in ids if i not in tokenizer.all_special_ids]
    # the original: the special tokens dropped, the rest through sentencepiece (bytes back to UTF-8)
    assert tokenizer.decode(ids, skip_special_tokens=True) == tokenizer.clean_up_tokenization(sp.decode(plain))
    assert '你好，世界 🙂 🐼' in tokenizer.decode(ids, skip_special_tokens=True)
    assert tokenizer.decode(tokenizer('a photo of a cat.').input_ids, skip_special_tokens=True) == 'a photo of a cat.'


def test_the_remote_code_is_never_needed(published):
    """transformers' AutoTokenizer refuses the InternLM2 folder without remote code (the folder does not
    even hold it); ``load_tokenizer`` reads it with transformers' own sentencepiece class."""
    folder, _ = published
    from transformers import AutoTokenizer
    if json.loads((folder / 'tokenizer_config.json').read_text())['tokenizer_class'] == 'InternLM2Tokenizer':
        with pytest.raises(ValueError):
            AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)
    assert type(load_tokenizer(folder)).__name__ == 'SentencePieceTokenizer'


def test_a_tokenizer_json_folder_loads_through_auto_tokenizer(tmp_path):
    make_native_chat_folder(tmp_path)
    tokenizer = load_tokenizer(tmp_path)
    assert tokenizer.is_fast and tokenizer.convert_tokens_to_ids('<IMG_CONTEXT>') != tokenizer.unk_token_id


def test_missing_or_unreadable_tokenizers_are_named(tmp_path):
    with pytest.raises(TokenizerError, match=f'{tmp_path}: no tokenizer'):
        load_tokenizer(tmp_path)
    (tmp_path / 'tokenizer.model').write_bytes(b'')
    (tmp_path / 'tokenizer_config.json').write_text(json.dumps(
        {'tokenizer_class': 'BaichuanTokenizer', 'auto_map': {'AutoTokenizer': ['tokenization_baichuan.X', None]}}))
    with pytest.raises(TokenizerError, match='tokenizer class BaichuanTokenizer is read here only from'):
        load_tokenizer(tmp_path)
    (tmp_path / 'tokenizer_config.json').write_text('{not json')
    with pytest.raises(TokenizerError, match='tokenizer_config.json: not valid JSON'):
        load_tokenizer(tmp_path)


def test_the_vocabulary_files_of_a_transformers_class_load(tmp_path):
    """A Qwen2-based folder may ship vocab.json + merges.txt with ``tokenizer_class: Qwen2Tokenizer`` and
    no tokenizer.json: transformers' own class reads them."""
    from internvl.testing import SPECIAL_TOKENS, make_tokenizer
    source = make_tokenizer(tmp_path / 'source')
    folder = tmp_path / 'qwen2'
    folder.mkdir()
    source.backend_tokenizer.model.save(str(folder))
    added = {str(source.convert_tokens_to_ids(t)): dict(content=t, lstrip=False, rstrip=False, normalized=False,
                                                        single_word=False, special=True) for t in SPECIAL_TOKENS}
    (folder / 'tokenizer_config.json').write_text(json.dumps(dict(
        tokenizer_class='Qwen2Tokenizer', added_tokens_decoder=added, eos_token='</s>', pad_token='<pad>',
        unk_token='<unk>')))
    assert sorted(p.name for p in folder.iterdir()) == ['merges.txt', 'tokenizer_config.json', 'vocab.json']
    tokenizer = load_tokenizer(folder)
    assert type(tokenizer).__name__ == 'Qwen2Tokenizer'
    ids = tokenizer('<|im_start|>a photo of a cat<IMG_CONTEXT>', add_special_tokens=False).input_ids
    assert ids[0] == source.convert_tokens_to_ids('<|im_start|>') and ids[-1] == source.convert_tokens_to_ids(
        '<IMG_CONTEXT>')
    assert tokenizer.decode(ids[1:-1]) == 'a photo of a cat'


def test_transformers_model_type_notice_is_silenced_and_its_other_warnings_are_not():
    """OpenGVLab folders name their own model type; transformers' notice about it is known noise
    (internvl/utils/quiet.py, installed by the conftest as by the tools), its other warnings are not."""
    import logging
    logger = logging.getLogger('transformers.configuration_utils')
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        logger.warning('You are using a model of type internvl_chat to instantiate a model of type llama. This is '
                       'not supported for all configurations of models and can yield errors.')
        logger.warning('some other configuration warning')
    finally:
        logger.removeHandler(handler)
    assert [r.getMessage() for r in records] == ['some other configuration warning']
