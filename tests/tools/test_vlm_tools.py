"""tools/chat.py, zero_shot.py, retrieval.py and extract_features.py end to end on tiny random models
and a folder of generated images, and their one-line errors for bad inputs."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from internvl.testing import make_clip_folder, make_native_chat_folder, make_opengvlab_chat_folder

REPO = Path(__file__).resolve().parents[2]


def tool(name: str, *args: str, stdin: str = '') -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / 'tools' / name), *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, timeout=600, input=stdin,
                          env={**os.environ, 'PYTHONPATH': str(REPO), 'HF_HUB_OFFLINE': '1'})


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('vlm-tools')
    make_native_chat_folder(root / 'chat')
    make_opengvlab_chat_folder(root / 'chat-internlm2')
    make_clip_folder(root / 'clip')
    images = root / 'images'
    images.mkdir()
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate([(64, 48), (100, 30), (40, 40), (30, 90)]):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(images / f'im{i}.png')
    (root / 'classes.txt').write_text('cat\ndog\nred panda\n')
    (root / 'labels.txt').write_text('im0.png\tcat\nim1.png\tdog\nim2.png\tred panda\n')
    captions = [(0, 'a cat'), (1, 'a dog'), (2, 'a red panda'), (3, 'a bird'), (0, 'two cats')]
    (root / 'captions.jsonl').write_text('\n'.join(json.dumps({'image': f'im{i}.png', 'caption': c})
                                                   for i, c in captions) + '\n')
    (root / 'notes.txt').write_text('not an image')
    (root / 'empty.txt').write_text('\n')
    return root


def test_chat_one_shot_with_two_images_prints_the_tiling(data):
    out = tool('chat.py', data / 'chat', '--image', data / 'images/im0.png', '--image', data / 'images/im1.png',
               '--question', 'what is in the picture', '--max-new-tokens', '4')
    assert out.returncode == 0, out.stderr
    assert 'im0.png: 64x48 -> 3x2 tiles of 56 + thumbnail = 7 tiles' in out.stdout
    assert 'im1.png: 100x30 -> 3x1 tiles of 56 + thumbnail = 4 tiles' in out.stdout
    assert out.stdout.count('assistant> ') == 1


def test_chat_interactive_rounds_until_an_empty_line(data):
    out = tool('chat.py', data / 'chat-internlm2', '--image', data / 'images/im2.png', '--max-new-tokens', '3',
               stdin='describe the image\nand the colours?\n\n')
    assert out.returncode == 0, out.stderr
    assert out.stdout.count('assistant> ') == 2


def test_zero_shot_prints_top_k_and_accuracy(data):
    out = tool('zero_shot.py', data / 'clip', data / 'images', '--classes', data / 'classes.txt', '--labels',
               data / 'labels.txt', '--mode', 'InternVL-G', '--topk', '2')
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith('im') and '.png' in line]
    assert len(rows) == 4 and all(line.count('(') == 2 for line in rows)
    assert 'accuracy on 3 labelled images (InternVL-G): top-1' in out.stdout


def test_retrieval_prints_recall_both_ways(data):
    out = tool('retrieval.py', data / 'clip', data / 'images', data / 'captions.jsonl')
    assert out.returncode == 0, out.stderr
    assert '4 images, 5 captions (InternVL-C)' in out.stdout
    # 4 images and 5 captions: every caption and image is within the top 5 / 10
    assert 'R@5 100.00  R@10 100.00' in out.stdout.splitlines()[-1]


@pytest.mark.parametrize('model, kind, out_name, shape', [('clip', 'pooled', 'f.npy', (4, 32)),
                                                           ('chat', 'dense', 'f.safetensors', (4, 64, 4, 4))])
def test_extract_features_writes_them(data, model, kind, out_name, shape):
    out_file = data / out_name
    out = tool('extract_features.py', data / model, data / 'images', out_file, '--kind', kind)
    assert out.returncode == 0, out.stderr
    if out_name.endswith('.npy'):
        features = np.load(out_file)
        assert (data / 'f.npy.names.txt').read_text().split() == [f'im{i}.png' for i in range(4)]
    else:
        with safe_open(str(out_file), 'pt') as f:
            features = f.get_tensor('features').numpy()
            assert json.loads(f.metadata()['images'])[0] == 'im0.png'
    assert features.shape == shape and np.isfinite(features).all()


def test_pooled_features_equal_the_models_embedding(data):
    from internvl.apis import extract_features, list_images
    from internvl.apis.zero_shot import encode_images, load_clip_model
    images = list_images(data / 'images')
    model, _ = load_clip_model(data / 'clip')
    expected = encode_images(model, images, 'InternVL-C', batch_size=3)
    got = torch.nn.functional.normalize(extract_features(data / 'clip', images, 'pooled', batch_size=2), dim=-1)
    assert torch.allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize('name, args, message', [
    ('chat.py', ['{clip}', '--question', 'hi'], 'not an InternVL-Chat model folder'),
    ('chat.py', ['{chat}', '--image', '{notes}', '--question', 'hi'], 'notes.txt is not an image'),
    ('chat.py', ['{chat}', '--template', 'nope', '--question', 'hi'], "unknown conversation template 'nope'"),
    ('zero_shot.py', ['{clip}', '{images}', '--classes', '{empty}'], 'empty.txt: no class names'),
    ('zero_shot.py', ['{chat}', '{images}', '--classes', '{classes}'], 'not an InternVL-C/G'),
    ('retrieval.py', ['{clip}', '{images}', '{classes}'], 'classes.txt:1: expected {"image"'),
    ('extract_features.py', ['{clip}', '{root}', '{root}/x.npy'], 'no image files'),
])
def test_bad_inputs_give_one_line_errors(data, name, args, message):
    paths = dict(clip=data / 'clip', chat=data / 'chat', notes=data / 'notes.txt', empty=data / 'empty.txt',
                 images=data / 'images', classes=data / 'classes.txt', root=data)
    out = tool(name, *[a.format(**paths) for a in args])
    assert out.returncode == 1
    assert message in out.stderr and 'Traceback' not in out.stderr


@pytest.fixture(scope='module')
def broken(data, tmp_path_factory):
    """Copies of the chat and C/G folders whose weights cannot be read: a mistake reported from one of
    them was found before the weights were loaded."""
    import shutil
    root = tmp_path_factory.mktemp('broken')
    for name in ('chat-internlm2', 'clip'):
        shutil.copytree(data / name, root / name)
        (root / name / 'model.safetensors').write_bytes(b'not weights')
    shutil.copytree(data / 'chat-internlm2', root / 'no-tokenizer')
    for tokenizer_file in ('tokenizer.model', 'tokenizer_config.json'):
        (root / 'no-tokenizer' / tokenizer_file).unlink()
    shutil.copytree(data / 'chat-internlm2', root / 'no-config')
    (root / 'no-config' / 'config.json').unlink()
    (root / 'bad-images').mkdir()
    shutil.copy(data / 'images' / 'im0.png', root / 'bad-images' / 'good.png')
    (root / 'bad-images' / 'bad.png').write_text('not an image')
    (root / 'model.json').write_text('{}')
    return root


@pytest.mark.parametrize('name, args, message', [
    ('chat.py', ['{broken}/chat-internlm2', '--image', '{root}/missing.jpg'], 'image file not found: '),
    ('chat.py', ['{broken}/chat-internlm2', '--image', '{images}/im0.png', '--max-num', '0'],
     '--max-num must be >= 1, got 0'),
    ('chat.py', ['{broken}/chat-internlm2', '--image', '{images}'], 'images is a folder; expected an image file'),
    ('chat.py', ['{broken}/chat-internlm2', '--template', 'nope'], "unknown conversation template 'nope'"),
    ('chat.py', ['{broken}/no-tokenizer'], 'no-tokenizer: no tokenizer (expected tokenizer.json'),
    ('chat.py', ['{broken}/no-config'], 'no-config: no config.json; expected an InternVL-Chat model folder'),
    ('chat.py', ['{broken}/model.json'], 'model.json is a file; expected the InternVL-Chat model folder'),
    ('zero_shot.py', ['{broken}/clip', '{images}', '--classes', '{classes}', '--topk', '0'],
     '--topk must be >= 1, got 0'),
    ('zero_shot.py', ['{broken}/clip', '{broken}/bad-images', '--classes', '{classes}'], 'bad.png is not an image'),
    ('extract_features.py', ['{broken}/bad-images/bad.png', '{images}', '{root}/f.npy'],
     'bad.png: not a checkpoint (expected a torch.save file, a .safetensors file or a model folder)'),
])
def test_mistakes_are_one_line_before_the_weights_load(data, broken, name, args, message):
    paths = dict(broken=broken, root=data, images=data / 'images', classes=data / 'classes.txt')
    out = tool(name, *[a.format(**paths) for a in args], '--question' if name == 'chat.py' else '--batch-size',
               'hi' if name == 'chat.py' else '2')
    assert out.returncode == 1, out.stdout[-2000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and message in errors[0], out.stderr[-2000:]
    assert 'Traceback' not in out.stderr and 'not a readable safetensors' not in out.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason='the mistake is asking for a GPU on a machine without one')
def test_a_gpu_asked_for_where_there_is_none_is_one_line(data):
    out = tool('chat.py', data / 'chat', '--device', 'cuda', '--question', 'hi')
    assert out.returncode == 1 and out.stderr.strip().splitlines()[-1] == \
        'error: --device cuda: no CUDA GPU is visible to torch here; use --device cpu'
    assert 'Traceback' not in out.stderr


def test_zero_shot_table_csv_and_any_case_mode(data, tmp_path):
    out = tool('zero_shot.py', data / 'clip', data / 'images', '--classes', data / 'classes.txt', '--topk', '2',
               '--mode', 'internvl-g', '--out', tmp_path / 'p.csv')
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith(('image', 'im'))]
    assert len(lines) == 5 and len({line.index('top-2') for line in lines[:1]}) == 1
    assert len({line.index(')') for line in lines[1:]}) == 1  # the first column is aligned
    rows = (tmp_path / 'p.csv').read_text().splitlines()
    assert rows[0] == 'image,top1_class,top1_prob,top2_class,top2_prob' and len(rows) == 5
    assert all(float(row.split(',')[2]) >= float(row.split(',')[4]) for row in rows[1:])


def test_the_conversation_loop():
    """Rounds until an empty line; Ctrl-C while answering stops that answer only, Ctrl-C at the prompt
    asks again, Ctrl-D ends."""
    from internvl.apis.chat import converse
    asked = iter(['one', 'two', 'three', KeyboardInterrupt, 'four', EOFError])
    answered, said = [], []

    def ask():
        item = next(asked)
        if isinstance(item, type) and issubclass(item, BaseException):
            raise item
        return item

    def answer(question, history):
        if question == 'two':
            raise KeyboardInterrupt
        answered.append((question, list(history or [])))
        return 'ok', (history or []) + [(question, 'ok')]

    converse(answer, ask, said.append)
    assert [q for q, _ in answered] == ['one', 'three', 'four']
    assert answered[1][1] == [('one', 'ok')]  # the stopped round is not in the history
    assert '\n(answer stopped)' in said
    answered.clear()
    converse(answer, lambda: pytest.fail('asked'), said.append, question='once')
    assert [q for q, _ in answered] == ['once']
