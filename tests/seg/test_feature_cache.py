"""The feature cache: the frozen backbone run once over a split and its maps stored; probes trained from
an fp32 cache end bit-identical to probes trained live on the same fixed pipeline, and from fp16 / bf16
caches within the stated tolerance; the cache resumes after a kill and refuses what it cannot be."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.registry import init_default_scope
from safetensors import safe_open

import mmseg_custom  # noqa: F401
from mmseg_custom.probing import CachedFeatureDataset, use_feature_cache, write_feature_cache
from mmseg_custom.probing import feature_cache
from probe_study import DEMO, REPO, last_record, study, tiny_cfg, train  # noqa: F401 (study: a fixture)

# fp16 / bf16 caches of fp32 maps round them (2**-11 / 2**-8 relative). After ITERS AdamW steps the probes'
# parameters and BN statistics (weights of about 1e-2) differed from the live run's by at most 1.1e-5 (fp16) and
# 7.5e-5 (bf16) when measured; the tolerance is about 4x that. (A bf16 backbone's maps cached in bf16 are exact.)
TOLERANCE = {'float16': dict(atol=5e-5, rtol=1e-3), 'bfloat16': dict(atol=3e-4, rtol=1e-2)}


@pytest.fixture(scope='module', autouse=True)
def scope():
    init_default_scope('mmseg')


def fixed_cfg(study: Path, name: str):
    """The tiny sweep trained live on the config's fixed pipeline (the cache's)."""
    cfg = tiny_cfg(study, name)
    cfg.train_dataloader.dataset.pipeline = cfg.fixed_pipeline
    return cfg


def write_cache(study: Path, dtype: str, name: str = '', **kwargs) -> Path:
    root = study / (name or f'cache_{dtype}')
    cfg = tiny_cfg(study, 'writer')
    for split in ('train', 'val'):
        write_feature_cache(cfg, str(DEMO), root / split, split, dtype=dtype, num_workers=0, **kwargs)
    return root


@pytest.fixture(scope='module')
def live(study):
    return train(fixed_cfg(study, 'live')).decode_head.state_dict()


def train_from_cache(study: Path, root: Path, name: str):
    return train(use_feature_cache(tiny_cfg(study, name), root))


@pytest.mark.slow
def test_probes_trained_from_an_fp32_cache_equal_the_live_ones(study, live):
    model = train_from_cache(study, write_cache(study, 'float32', shard_size=3), 'from_fp32')
    assert sum(p.numel() for p in model.backbone.parameters()) == 0  # no backbone in memory
    cached = model.decode_head.state_dict()
    assert sorted(cached) == sorted(live)
    for key in live:
        assert torch.equal(cached[key], live[key]), key
    scores = last_record(study / 'from_fp32', 'mIoU')
    assert all(f'probe/{name}/mIoU' in scores for name in model.decode_head.probes)  # validated from the val cache


@pytest.mark.slow
@pytest.mark.parametrize('dtype', ['float16', 'bfloat16'])
def test_low_precision_caches_stay_close(study, live, dtype):
    root = write_cache(study, dtype)
    with safe_open(str(root / 'train' / 'shard-00000.safetensors'), 'pt') as f:
        assert f.get_tensor('0.features').dtype == getattr(torch, dtype)
    cached = train_from_cache(study, root, f'from_{dtype}').decode_head.state_dict()
    for key, value in live.items():
        if value.is_floating_point():
            torch.testing.assert_close(cached[key], value, **TOLERANCE[dtype], msg=key)


@pytest.mark.slow
def test_a_killed_cache_resumes_to_the_same_shards(study, monkeypatch):
    complete = write_cache(study, 'float16', 'uninterrupted', shard_size=3, flip=True)
    root = study / 'killed'
    cfg = tiny_cfg(study, 'writer')
    save = feature_cache.save_file
    calls = []

    def dies_on_the_third_shard(tensors, path, metadata=None):
        calls.append(path)
        if len(calls) == 3:
            Path(path).write_bytes(b'half a shard')
            raise KeyboardInterrupt
        save(tensors, path, metadata=metadata)

    monkeypatch.setattr(feature_cache, 'save_file', dies_on_the_third_shard)
    with pytest.raises(KeyboardInterrupt):
        write_feature_cache(cfg, str(DEMO), root, 'train', dtype='float16', flip=True, shard_size=3, num_workers=0)
    assert sorted(p.name for p in root.iterdir()) == ['manifest.json', 'shard-00000.safetensors',
                                                       'shard-00001.safetensors', 'shard-00002.tmp']
    with pytest.raises(ValueError, match='incomplete'):
        CachedFeatureDataset(str(root))
    monkeypatch.setattr(feature_cache, 'save_file', save)
    write_feature_cache(cfg, str(DEMO), root, 'train', dtype='float16', flip=True, shard_size=3, num_workers=0)
    shards = sorted(p.name for p in (complete / 'train').glob('shard-*'))
    assert sorted(p.name for p in root.glob('shard-*')) == shards and not list(root.glob('*.tmp'))
    assert len(shards) == 6  # 8 images x 2 views in shards of 3
    for shard in shards:
        with safe_open(str(root / shard), 'pt') as a, safe_open(str(complete / 'train' / shard), 'pt') as b:
            assert a.metadata() == b.metadata() and sorted(a.keys()) == sorted(b.keys())
            assert all(torch.equal(a.get_tensor(k), b.get_tensor(k)) for k in a.keys())
    flipped = CachedFeatureDataset(str(root))[8]  # image 0, flipped
    original = CachedFeatureDataset(str(root))[0]
    assert flipped['data_samples'].metainfo['view'] == 'flip'
    assert torch.equal(flipped['data_samples'].gt_sem_seg.data, original['data_samples'].gt_sem_seg.data.flip(-1))


@pytest.mark.slow
def test_the_tool_prints_the_size_first_and_refuses_another_cache_in_its_folder(study):
    out = study / 'tool_cache'
    options = ['--cfg-options', f'model.backbone.pretrained={study / "vit.pth"}',
               *(f'{loader}.dataset.data_root={study / "data"}' for loader in ('train_dataloader', 'val_dataloader'))]
    command = [sys.executable, 'tools/cache_features.py', str(DEMO), '--out', str(out), '--splits', 'val',
               '--num-workers', '0', *options]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    log = result.stdout + result.stderr
    per_sample = 4 * 96 * 8 * 8 * 2 + 112 * 112  # fp16 maps of the demo's 4 blocks + the uint8 label
    assert f'2 samples (2 images x 1 views), maps [4, 96, 8, 8] in float16: {per_sample / 2 ** 20:.2f} MiB each' in log
    assert log.index('MiB each') < log.index('caching val')
    result = subprocess.run(command[:-len(options)] + ['--dtype', 'bfloat16', *options], capture_output=True, text=True,
                            cwd=REPO)
    assert result.returncode == 1 and 'written with other arguments (dtype)' in result.stderr


def test_use_feature_cache_refuses_what_does_not_match(study, tmp_path):
    cfg = tiny_cfg(study, 'refuse')
    with pytest.raises(FileNotFoundError, match='not a feature cache'):
        use_feature_cache(cfg, tmp_path)
    with pytest.raises(ValueError, match='pretrained is not set'):
        write_feature_cache(tiny_cfg(study, 'refuse', **{'model.backbone.pretrained': None}), str(DEMO), tmp_path / 'x')
