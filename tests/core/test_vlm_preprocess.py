"""The seed README's image tiling and the conversation templates, against hand-computed cases."""
import numpy as np
import pytest
import torch
from PIL import Image

from internvl.data import build_transform, dynamic_preprocess, load_image, target_ratios, tile_grid
from internvl.models import get_conv_template


def noise_image(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))


def test_target_ratios_for_six_tiles():
    assert set(target_ratios(1, 6)) == {(1, 1), (1, 2), (2, 1), (1, 3), (3, 1), (2, 2), (1, 4), (4, 1), (1, 5), (5, 1),
                                        (2, 3), (3, 2), (1, 6), (6, 1)}
    counts = [c * r for c, r in target_ratios(1, 6)]
    assert counts == sorted(counts)
    with pytest.raises(ValueError, match='min_num'):
        target_ratios(3, 2)


@pytest.mark.parametrize('size, max_num, grid', [
    ((800, 600), 6, (3, 2)),    # 4:3 -> 3:2 (diff 0.17) beats 1:1 (0.33)
    ((600, 800), 6, (2, 3)),
    ((1000, 300), 6, (3, 1)),   # 3.33 -> 3:1
    ((1000, 300), 12, (3, 1)),  # 3:1 comes before 6:2 (same ratio, more tiles): the tie rule decides
    ((448, 448), 6, (1, 1)),    # square tie 1:1 vs 2:2: 448*448 is not > 0.5 * 448^2 * 4, keep 1:1
    ((1000, 1000), 6, (2, 2)),  # 1e6 > 0.5 * 448^2 * 4 = 401408: the larger grid wins the tie
    ((1000, 1000), 1, (1, 1)),
])
def test_tile_grid_hand_computed(size, max_num, grid):
    assert tile_grid(*size, max_num=max_num, image_size=448) == grid


def test_tie_rule_for_a_large_wide_image():
    # 3:1 and 6:2 tie exactly; the image has more than half the pixels of 6x2 tiles of 448, so 6:2 wins
    assert tile_grid(2700, 900, max_num=12, image_size=448) == (6, 2)


def test_tiles_are_read_row_by_row_and_the_thumbnail_comes_last():
    image = noise_image(120, 60)
    tiles = dynamic_preprocess(image, max_num=6, image_size=20, use_thumbnail=True)
    cols, rows = tile_grid(120, 60, max_num=6, image_size=20)
    assert (cols, rows) == (2, 1) and len(tiles) == 3
    resized = np.asarray(image.resize((40, 20)))
    assert np.array_equal(np.asarray(tiles[0]), resized[:, :20])
    assert np.array_equal(np.asarray(tiles[1]), resized[:, 20:])
    assert np.array_equal(np.asarray(tiles[2]), np.asarray(image.resize((20, 20))))
    assert len(dynamic_preprocess(image, max_num=1, image_size=20, use_thumbnail=True)) == 1  # no thumbnail


def test_load_image_normalises_with_imagenet_statistics(tmp_path):
    path = tmp_path / 'a.png'
    Image.new('RGB', (300, 100), (124, 116, 104)).save(path)  # about the ImageNet mean
    pixel_values = load_image(path, input_size=28, max_num=6)
    assert pixel_values.shape == (4, 3, 28, 28)  # 3x1 tiles + thumbnail
    assert pixel_values.abs().max() < 0.02
    assert torch.equal(build_transform(28)(Image.open(path)), pixel_values[-1])


def test_a_file_that_is_not_an_image_is_named(tmp_path):
    path = tmp_path / 'notes.jpg'
    path.write_text('not an image')
    with pytest.raises(ValueError, match='notes.jpg is not an image'):
        load_image(path)


def test_16_bit_images_are_read_as_mmcv_reads_them(tmp_path):
    """A 16-bit PNG keeps its high byte, as OpenCV's (mmcv's) imread gives the mmseg / mmdet tools, grey
    and RGB alike: two different 16-bit images stay different (PIL's convert would clip both to white)."""
    import mmcv
    from internvl.data import open_image
    rng = np.random.default_rng(0)
    paths = []
    for name, shape in (('grey_a', (40, 56)), ('grey_b', (40, 56)), ('rgb', (40, 56, 3))):
        pixels = rng.integers(256, 65536, size=shape, dtype=np.uint16)
        paths.append(tmp_path / f'{name}.png')
        assert mmcv.imwrite(pixels, str(paths[-1]))
    for path in paths:
        image = np.asarray(open_image(path))
        assert image.dtype == np.uint8 and image.shape == (40, 56, 3)
        np.testing.assert_array_equal(image, mmcv.imread(str(path), channel_order='rgb'))
    assert not torch.equal(load_image(paths[0], input_size=28, max_num=1), load_image(paths[1], input_size=28, max_num=1))


def test_float_images_and_folders_are_refused_by_name(tmp_path):
    from internvl.data import open_image
    Image.fromarray(np.ones((8, 8), dtype=np.float32)).save(tmp_path / 'depth.tif')
    with pytest.raises(ValueError, match=r'depth.tif: a floating-point image \(PIL mode F\); expected 8 or 16 bits'):
        open_image(tmp_path / 'depth.tif')
    with pytest.raises(ValueError, match=f'{tmp_path} is a folder; expected an image file'):
        open_image(tmp_path)


def test_internlm2_chat_prompt_with_history():
    conv = get_conv_template('internlm2-chat')
    conv.system_message = 'S'
    conv.append_message(conv.roles[0], '<image>\nQ1')
    conv.append_message(conv.roles[1], 'A1')
    conv.append_message(conv.roles[0], 'Q2')
    conv.append_message(conv.roles[1], None)
    assert conv.get_prompt() == ('<|im_start|>system\nS<|im_end|><|im_start|>user\n<image>\nQ1<|im_end|>'
                                 '<|im_start|>assistant\nA1<|im_end|><|im_start|>user\nQ2<|im_end|>'
                                 '<|im_start|>assistant\n')
    assert conv.stop_token == '<|im_end|>'


def test_phi3_and_internvl2_5_separators():
    assert get_conv_template('phi3-chat').stop_token == '<|end|>'
    conv = get_conv_template('internvl2_5')
    conv.append_message(conv.roles[0], 'hi')
    conv.append_message(conv.roles[1], None)
    assert conv.get_prompt().endswith('<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n')
    assert conv.stop_token == '<|im_end|>'
    assert get_conv_template('internvl2_5').messages == []  # copies, never the shared table entry


def test_unknown_template_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown conversation template 'vicuna'.*internlm2-chat"):
        get_conv_template('vicuna')
