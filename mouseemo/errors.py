"""Errors users see.

Every problem with a user's input (a missing or corrupt file, a wrong shape, mismatched parameters)
raises a subclass of :class:`MouseemoError` whose message names the file and the problem. The command
line prints that message on one line and exits non-zero, without a traceback.
"""


class MouseemoError(Exception):
    """Base class for errors caused by the user's input or configuration."""


class DataError(MouseemoError, ValueError):
    """A data file is missing, unreadable, corrupt or inconsistent."""


class ConfigError(MouseemoError, ValueError):
    """Parameters are invalid or do not match (e.g. prototypes built with other HOG parameters)."""
