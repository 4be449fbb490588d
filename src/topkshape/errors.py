"""Errors that reach a user as one line: what is wrong and where, no traceback needed."""


class TopkshapeError(Exception):
    """Base class: bad input a user can fix (a path, a file, a config value)."""


class ConfigError(TopkshapeError, ValueError):
    """A configuration value is missing, of the wrong type or out of range."""


class InputDataError(TopkshapeError):
    """An input file or folder is missing, empty, corrupt or not what was expected."""


class ChecksumError(InputDataError):
    """A downloaded or given file does not have the pinned SHA-256."""
