"""User-facing errors: the CLI prints their message without a traceback."""


class AlexNetError(Exception):
    """A failure the user can act on; the message says what was wrong and what to do."""


class ConfigError(AlexNetError):
    """A bad recipe, override or option."""


class DataError(AlexNetError):
    """A dataset or image that cannot be found or read."""


class CheckpointError(AlexNetError):
    """A checkpoint that is missing, truncated or does not fit what was asked for."""


class WriteError(AlexNetError):
    """A file that cannot be written (full disk, no permission); nothing partial is left."""
