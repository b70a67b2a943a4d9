"""Multi-scale + flip test-time augmentation: ``BatchedSegTTAModel`` gives mmseg's ``SegTTAModel`` result
(the same augmentations from the config's ``tta_pipeline``, the same merge), with the slide inference of
all augmentations batched; ``--tta`` is refused for a Mask R-CNN, which mmdet cannot merge."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config, ConfigDict

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs' / 'seg' / 'demo' / 'upernet_internvit-tiny_1xb8-500it_synthetic-ade-112x112.py'


@pytest.fixture(scope='module')
def tta_batch(tmp_path_factory):
    import mmseg_custom  # noqa: F401
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    from mmseg_custom.datasets import write_synthetic_ade
    init_default_scope('mmseg')
    root = write_synthetic_ade(tmp_path_factory.mktemp('tta') / 'data', num_train=1, num_val=2, size=112)
    cfg = Config.fromfile(str(CONFIG))
    dataset = DATASETS.build(dict(cfg.test_dataloader.dataset, data_root=str(root), pipeline=cfg.tta_pipeline))
    return cfg, pseudo_collate([dataset[0], dataset[1]])


def build_tta(cfg: Config, tta_type: str, segmentor: str):
    from mmseg.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(ConfigDict(type=tta_type, module=dict(cfg.model, type=segmentor)))
    return model.eval()


def test_batched_tta_equals_mmseg_tta(tta_batch):
    cfg, batch = tta_batch
    assert len(batch['inputs']) == 6  # 3 scales x 2 flips, from the config's tta_pipeline
    ours = build_tta(cfg, 'BatchedSegTTAModel', 'BatchedSlideEncoderDecoder')
    theirs = build_tta(cfg, 'SegTTAModel', 'EncoderDecoder')  # mmseg's own TTA over mmseg's own segmentor
    theirs.module.load_state_dict(ours.module.state_dict())
    calls = []
    ours.module.backbone.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    with torch.no_grad():
        expected, got = theirs.test_step(batch), ours.test_step(batch)
    assert len(got) == len(expected) == 2
    for a, b in zip(got, expected):
        assert a.img_path == b.img_path
        torch.testing.assert_close(a.seg_logits.data, b.seg_logits.data, rtol=1e-4, atol=1e-5)
        assert (a.pred_sem_seg.data == b.pred_sem_seg.data).float().mean() > 0.999
    # crops of equal shape from all scales and flips share encoder batches (crop_batch_size 8):
    # per image 1 crop at 84 and 112, 4 at 168, x 2 flips x 2 images -> 2 + 2 + 8 + 4 = 24 crops in 4 passes
    assert sum(calls) == 24 and len(calls) == 4, calls


def test_whole_mode_tta_runs_mmseg_loop(tta_batch):
    cfg, batch = tta_batch
    cfg = cfg.copy()
    cfg.model.test_cfg = dict(mode='whole')
    ours = build_tta(cfg, 'BatchedSegTTAModel', 'BatchedSlideEncoderDecoder')
    theirs = build_tta(cfg, 'SegTTAModel', 'BatchedSlideEncoderDecoder')
    theirs.load_state_dict(ours.state_dict())
    with torch.no_grad():
        for a, b in zip(ours.test_step(batch), theirs.test_step(batch)):
            torch.testing.assert_close(a.seg_logits.data, b.seg_logits.data)


def test_tta_is_refused_where_it_cannot_run():
    from internvl_mmlab.cli import apply_tta
    det = Config.fromfile(str(REPO / 'configs' / 'det' / 'demo' /
                              'mask-rcnn_internvit-tiny_1xb4-12e_synthetic-coco-128x128.py'))
    with pytest.raises(ValueError, match='no test-time augmentation for instance segmentation'):
        apply_tta(det)
    seg = Config.fromfile(str(CONFIG))
    seg.tta_pipeline = None
    with pytest.raises(ValueError, match='defines no tta_pipeline'):
        apply_tta(seg)
    seg = Config.fromfile(str(CONFIG))
    apply_tta(seg)
    assert seg.model.type == 'BatchedSegTTAModel' and seg.model.module.type == 'BatchedSlideEncoderDecoder'
    assert seg.test_dataloader.dataset.pipeline[1].type == 'TestTimeAug'
