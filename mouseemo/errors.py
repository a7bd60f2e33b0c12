"""Errors users see.

Every problem with a user's input (a missing or corrupt file, a wrong shape, mismatched parameters)
raises a subclass of :class:`MouseemoError` whose message names the file and the problem. The command
line prints that message on one line and exits non-zero, without a traceback (:func:`run_guarded`).

Messages name the library's parameters, in backticks (``"set `overwrite` to replace it"``), so they
read right from Python. The command line shows its flags in their place: it registers the running
command's ``name -> flag`` mapping (:func:`use_cli_flags`, built from its parser), and
:func:`for_user` swaps them in (:func:`name_flags`).
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Mapping


class MouseemoError(Exception):
    """Base class for errors caused by the user's input or configuration."""


class DataError(MouseemoError, ValueError):
    """A data file is missing, unreadable, corrupt or inconsistent."""


class ConfigError(MouseemoError, ValueError):
    """Parameters are invalid or do not match (e.g. prototypes built with other HOG parameters)."""


def user_error(err: BaseException) -> MouseemoError | None:
    """The :class:`MouseemoError` behind ``err``, following wrappers (Hydra wraps instantiation errors)."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, MouseemoError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


_PARAM = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")


def name_flags(message: str, flags: Mapping[str, str]) -> str:
    """``message`` with each backticked parameter that ``flags`` maps replaced by its flag.

    Example:
        >>> name_flags("set `overwrite` to replace it", {"overwrite": "--overwrite"})
        'set --overwrite to replace it'
    """
    return _PARAM.sub(lambda m: flags.get(m.group(1), m.group(0)), message)


#: The running command's ``{parameter: flag}`` (:func:`use_cli_flags`); empty when called from Python.
_CLI_FLAGS: dict[str, str] = {}


def use_cli_flags(flags: Mapping[str, str]) -> None:
    """Tell :func:`for_user` which flags the running command has (the command line calls this)."""
    _CLI_FLAGS.clear()
    _CLI_FLAGS.update(flags)


def for_user(message: str) -> str:
    """``message`` as the user of the running command reads it: with its flags in place of
    parameter names (unchanged from Python, where no flags are set)."""
    return name_flags(message, _CLI_FLAGS)


def run_guarded(fn: Callable[[], int | None]) -> int:
    """Run ``fn``; turn user errors into one line on stderr and a non-zero exit code, the running
    command's flags in place of parameter names (:func:`for_user`)."""
    try:
        code = fn()
    except Exception as exc:
        err = user_error(exc)
        if err is None or os.environ.get("MOUSEEMO_DEBUG"):
            raise
        print(f"mouseemo: error: {for_user(str(err))}", file=sys.stderr)
        return 2
    except Terminated:
        print("mouseemo: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("mouseemo: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C, so that the same clean-up runs: queued work
    is dropped, running work stops at its next chunk, and temporary files are removed."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def handle_sigterm() -> None:
    """Turn SIGTERM into :class:`Terminated` (from the main thread only; elsewhere a no-op)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
