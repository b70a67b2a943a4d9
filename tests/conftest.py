import os
import sys
from pathlib import Path

from internvl.utils.quiet import silence_known_noise

silence_known_noise()  # the notices known to be harmless (internvl/utils/quiet.py); every other warning shows

# No network here: transformers must never wait on a hub look-up.
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')

# The helpers (reference implementations, the scenario and step scripts, test configs) beside the tests.
sys.path.insert(0, str(Path(__file__).with_name('helpers')))
