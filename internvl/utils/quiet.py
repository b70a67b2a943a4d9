"""The notices known to be harmless on this stack, silenced in one place, each by its exact source
(logger or warning category) and message, so that every other warning still shows.

``silence_known_noise()`` installs the filters; it is idempotent and imports none of the libraries
concerned, so it runs first (``internvl.apis.start_tool``, ``internvl_mmlab`` on import, the tests'
conftest). ``quiet_logger`` puts the same log filter on a logger created later (mmengine's own
``MMLogger`` instances are not in ``logging``'s registry).
"""
import logging
import os
import re
import warnings

# (category, message pattern, why it is harmless)
HARMLESS_WARNINGS = [
    (UserWarning, r'pkg_resources is deprecated as an API',
     'mmengine and mmcv import pkg_resources; setuptools<82, which has it, is pinned for them'),
    (UserWarning, r"Failed to add <class 'mmengine\.visualization\.vis_backend\.LocalVisBackend'>",
     "mmdet's DetInferencer builds its visualizer without a save_dir; tools/infer.py writes the picture"),
    (UserWarning, r'Warning: The (bbox|polygon) is out of bounds',
     'a detection touching the image border is drawn clipped to it'),
]
# logger name -> message patterns (and why)
HARMLESS_LOGS = {
    'transformers.configuration_utils': [
        r'You are using a model of type .* to instantiate a model of type',  # OpenGVLab folders: the LM part
    ],
    'mmengine': [
        r'Failed to search registry with scope "\w+" in the "function" registry tree',  # mmseg/mmdet have none
    ],
}
# DeepSpeed's "no GPU found, using the CPU" is a real warning on a machine that has a GPU it cannot
# reach; it is silenced only where the machine has no NVIDIA device at all.
NO_GPU_NOTICE = ('DeepSpeed', r'Setting accelerator to CPU')


class _MessageFilter(logging.Filter):
    def __init__(self, patterns: list[str]) -> None:
        super().__init__()
        self.pattern = re.compile('|'.join(f'(?:{p})' for p in patterns))

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.search(record.getMessage())


def _filter_once(logger: logging.Logger, patterns: list[str]) -> None:
    if patterns and not any(isinstance(f, _MessageFilter) for f in logger.filters):
        logger.addFilter(_MessageFilter(patterns))


def quiet_logger(logger: logging.Logger, name: str = '') -> None:
    """Filter the harmless messages of ``HARMLESS_LOGS[name or logger.name]`` out of ``logger``."""
    _filter_once(logger, HARMLESS_LOGS.get(name or logger.name, []))


def silence_known_noise() -> None:
    for category, message, _ in HARMLESS_WARNINGS:
        warnings.filterwarnings('ignore', message=message, category=category)
    for name in HARMLESS_LOGS:
        quiet_logger(logging.getLogger(name))
    if not os.path.exists('/dev/nvidia0') and not os.environ.get('CUDA_VISIBLE_DEVICES'):
        _filter_once(logging.getLogger(NO_GPU_NOTICE[0]), [NO_GPU_NOTICE[1]])
