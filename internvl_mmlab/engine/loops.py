"""Training loops whose resume is exact and costs one checkpoint read, whatever the workers.

mmengine's loops leave a sample's random augmentation to the global RNG of whichever process loads
it: a loader worker's (seeded once when the worker starts), or the main process's. So the draws depend
on the number of workers, on whether they persist, on the ranks and on restarts: a resumed epoch with
persistent workers replays epoch 0's draws. And ``IterBasedTrainLoop`` resumes by loading every batch
it skips (640k images at iteration 40k of an 80k ADE20K run).

Here each sample's draws are a pure function of (seed, pass over the dataset, sample index):

- ``SeededInfiniteSampler`` / ``SeededDefaultSampler`` (mmengine's ``InfiniteSampler`` /
  ``DefaultSampler``, same order) yield keys ``pass * len(dataset) + index``, where ``pass`` is the
  epoch (or the pass of the infinite stream) in which the index is drawn;
- ``SampleSeededDataset`` wraps the dataset: for a key it seeds ``random``, numpy and torch's CPU
  generator from (seed, pass, index), runs the wrapped dataset's pipeline, and restores the previous
  generator states (in the main process the model's draws continue undisturbed);
- ``ResumableIterBasedTrainLoop`` moves the sampler to the resumed iteration's position (computing
  nothing but the index order) instead of loading the skipped batches; ``ResumableEpochBasedTrainLoop``
  needs no move (an epoch's order comes from the epoch number).

Both loops wrap the train dataloader's dataset and sampler themselves, so a config only names the loop
(``train_cfg.type``); a sampler other than these two is left as it is, with a warning.
"""
import itertools
import logging
import random
from contextlib import contextmanager
from typing import Any, Iterator, Union

import numpy as np
import torch
from mmengine.dataset import DefaultSampler, InfiniteSampler
from mmengine.logging import print_log
from mmengine.registry import DATA_SAMPLERS, DATASETS, LOOPS
from mmengine.runner.loops import EpochBasedTrainLoop, IterBasedTrainLoop, _InfiniteDataloaderIterator

SEEDED_SAMPLERS = {'InfiniteSampler': 'SeededInfiniteSampler', 'DefaultSampler': 'SeededDefaultSampler'}


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """``random``, numpy and torch's CPU generator seeded with ``seed``, their states restored after."""
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    random.seed(seed)
    np.random.seed(seed)
    torch.default_generator.manual_seed(seed)  # the CPU generator only: pipelines draw on the CPU
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


@DATASETS.register_module()
class SampleSeededDataset:
    """``dataset`` indexed by sampler keys ``pass * len(dataset) + index``; each sample's pipeline runs
    with its random generators seeded from (``seed``, pass, index)."""

    def __init__(self, dataset: Union[dict, Any], seed: int = 0, lazy_init: bool = False) -> None:
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
        self.seed = int(seed)
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        return self.dataset.metainfo

    def full_init(self) -> None:
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()

    def __len__(self) -> int:
        return len(self.dataset)

    def get_data_info(self, key: int) -> dict:
        return self.dataset.get_data_info(key % len(self.dataset))

    def sample_seed(self, key: int) -> int:
        draw, index = divmod(int(key), len(self.dataset))
        return int(np.random.SeedSequence([self.seed % 2**63, draw, index]).generate_state(1)[0])

    def __getitem__(self, key: int) -> Any:
        with seeded(self.sample_seed(key)):
            return self.dataset[int(key) % len(self.dataset)]


@DATA_SAMPLERS.register_module()
class SeededDefaultSampler(DefaultSampler):
    """mmengine's ``DefaultSampler`` (the order of each epoch from seed + epoch), yielding
    ``epoch * len(dataset) + index``."""

    def __iter__(self) -> Iterator[int]:
        offset = self.epoch * len(self.dataset)
        return (offset + index for index in super().__iter__())


@DATA_SAMPLERS.register_module()
class SeededInfiniteSampler(InfiniteSampler):
    """mmengine's ``InfiniteSampler`` (passes of ``randperm`` from one seeded generator, rank ``r`` of
    ``W`` taking positions ``r, r + W, ...``), yielding ``pass * len(dataset) + index``, from the global
    position ``start`` on (``seek``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.start = 0

    def seek(self, position: int) -> None:
        """Continue at ``position`` of the global stream (samples drawn by all ranks together)."""
        self.start = position

    def _stream(self) -> Iterator[int]:
        generator = torch.Generator()
        generator.manual_seed(self.seed)
        for draw in itertools.count():
            order = torch.randperm(self.size, generator=generator) if self.shuffle else torch.arange(self.size)
            yield from (order + draw * self.size).tolist()

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(self._stream(), self.start + self.rank, None, self.world_size)


def seeded_dataloader(dataloader: Any, seed: int) -> Any:
    """A train dataloader config with its dataset in ``SampleSeededDataset`` and its sampler keyed; a
    built DataLoader, or another sampler, as it is (with a warning)."""
    if not isinstance(dataloader, dict):
        return dataloader
    sampler = dict(dataloader.get('sampler') or {})
    kind = sampler.get('type')
    name = kind if isinstance(kind, str) else getattr(kind, '__name__', str(kind))
    if name.split('.')[-1] not in SEEDED_SAMPLERS:
        print_log(f'sampler {name}: not one of {list(SEEDED_SAMPLERS)}, so the augmentation is not seeded per '
                  f'sample and a resume is not exact', logger='current', level=logging.WARNING)
        return dataloader
    sampler['type'] = SEEDED_SAMPLERS[name.split('.')[-1]]
    return dict(dataloader, sampler=sampler, dataset=dict(type='SampleSeededDataset', dataset=dataloader['dataset'],
                                                          seed=seed))


@LOOPS.register_module()
class ResumableIterBasedTrainLoop(IterBasedTrainLoop):
    """``IterBasedTrainLoop`` with per-sample seeded augmentation; a resume moves the sampler to the
    iteration instead of loading the batches before it."""

    def __init__(self, runner: Any, dataloader: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(runner, seeded_dataloader(dataloader, runner.seed), *args, **kwargs)

    def run(self) -> Any:
        """mmengine's ``IterBasedTrainLoop.run`` with the replay of the skipped batches replaced by
        ``_seek``."""
        self.runner.call_hook('before_train')
        self.runner.call_hook('before_train_epoch')
        if self._iter > 0:
            self._seek(self._iter)
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()
            data_batch = next(self.dataloader_iterator)
            self.run_iter(data_batch)
            self._decide_current_val_interval()
            if (self.runner.val_loop is not None and self._iter >= self.val_begin
                    and (self._iter % self.val_interval == 0 or self._iter == self._max_iters)):
                self.runner.val_loop.run()
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model

    def _seek(self, iteration: int) -> None:
        sampler, batch_size = self.dataloader.sampler, self.dataloader.batch_size
        if not isinstance(sampler, SeededInfiniteSampler) or batch_size is None:  # (a batch sampler reorders)
            print_log(f'Advance dataloader {iteration} steps to skip data that has already been trained',
                      logger='current', level=logging.WARNING)
            for _ in range(iteration):
                next(self.dataloader_iterator)
            return
        sampler.seek(iteration * batch_size * sampler.world_size)
        self.dataloader_iterator = _InfiniteDataloaderIterator(self.dataloader)  # restarts the workers' sampling
        print_log(f'Moved the sampler to iteration {iteration} without loading the batches before it',
                  logger='current')


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """``EpochBasedTrainLoop`` with per-sample seeded augmentation: the resumed epoch draws what the
    uninterrupted run drew, with any number of workers, persistent or not."""

    def __init__(self, runner: Any, dataloader: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(runner, seeded_dataloader(dataloader, runner.seed), *args, **kwargs)
