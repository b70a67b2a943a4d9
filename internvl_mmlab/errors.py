"""The errors our training and tools raise for a mistake in the data, the config or the run, each with
a message that names the file, key or value (the tools print it as one line, without a traceback)."""


class BadDataError(ValueError):
    """Training stopped on a sample that is wrong (the message names its file)."""


class NonFiniteLossError(RuntimeError):
    """Training stopped on a NaN or infinite loss."""


class NothingToResumeError(RuntimeError):
    """``--resume`` in a work dir whose every checkpoint is truncated or corrupt."""


class DataRootError(FileNotFoundError):
    """A dataset folder that is not there; the message says where it was expected and how to point at it."""


class ModelConfigError(ValueError):
    """``cfg.model`` cannot be built: a bad argument (an unknown preset, a wrong type name, ...)."""
