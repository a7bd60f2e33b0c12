"""The ``mouseemo`` command.

Each subcommand lives in :mod:`mouseemo.commands` as a module with ``register(subparsers)``; the
module adds its parser and sets ``func`` (called with the parsed args, returns an exit code).
``train`` and ``evaluate`` hand their arguments to Hydra unchanged (``mouseemo train model=cnn``).

Errors caused by the user's input (:class:`mouseemo.errors.MouseemoError`) print one line and exit
with status 2; set ``MOUSEEMO_DEBUG=1`` to see the traceback. Ctrl-C exits with 130 and SIGTERM with
143, both after the same clean-up: queued work is dropped and no partial output is left.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Callable, Sequence

from mouseemo import __version__
from mouseemo.errors import MouseemoError

#: Subcommands implemented with argparse, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = ("synth", "hog", "prototypes", "predict", "correlates", "embed")

#: Subcommands that take Hydra overrides.
HYDRA_COMMANDS: dict[str, str] = {"train": "train", "evaluate": "evaluate"}


def user_error(err: BaseException) -> MouseemoError | None:
    """The :class:`MouseemoError` behind ``err``, following wrappers (Hydra wraps instantiation errors)."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, MouseemoError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def run_guarded(fn: Callable[[], int | None]) -> int:
    """Run ``fn``; turn user errors into one line on stderr and a non-zero exit code."""
    try:
        code = fn()
    except Exception as exc:
        err = user_error(exc)
        if err is None or os.environ.get("MOUSEEMO_DEBUG"):
            raise
        print(f"mouseemo: error: {err}", file=sys.stderr)
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
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mouseemo",
        description="Emotion states from videos of a head-fixed mouse's face, and their neuronal correlates.",
    )
    parser.add_argument("--version", action="version", version=f"mouseemo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"mouseemo.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"mouseemo.commands.{name}":
                raise
            continue
        module.register(sub)
    for name in HYDRA_COMMANDS:
        sub.add_parser(
            name,
            help=f"{name} with Hydra overrides, e.g. `mouseemo {name} model=cnn trainer=cpu` (same as `python {name}.py ...`)",
            add_help=False,
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in HYDRA_COMMANDS:
        from mouseemo import hydra_entry

        return hydra_entry.run(HYDRA_COMMANDS[argv[0]], argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    handle_sigterm()
    return run_guarded(lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
