import os

from internvl.utils.quiet import silence_known_noise

silence_known_noise()  # the notices known to be harmless (internvl/utils/quiet.py); every other warning shows

# No network here: transformers must never wait on a hub look-up.
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
