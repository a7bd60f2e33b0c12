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
import sys
from collections.abc import Sequence
from typing import NoReturn

from mouseemo import __version__
from mouseemo.errors import handle_sigterm, run_guarded, use_cli_flags

#: Subcommands implemented with argparse, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "synth",
    "hog",
    "prototypes",
    "predict",
    "live",
    "explain",
    "correlates",
    "embed",
    "tail_shock",
)

#: Subcommands that take Hydra overrides.
HYDRA_COMMANDS: dict[str, str] = {"train": "train", "evaluate": "evaluate"}


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one ``mouseemo: error: ...`` line and exit 2, like
    every other error of the command line (argparse itself prints the usage block first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"mouseemo: error: {self.prog}: {message} (see '{self.prog} --help')\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with ``only`` (a subcommand's name, e.g. ``tail-shock``) just that
    subcommand, so that running one command does not import every other one (seconds of start-up)."""
    parser = Parser(
        prog="mouseemo",
        description="Emotion states from videos of a head-fixed mouse's face, and their neuronal correlates.",
    )
    parser.add_argument("--version", action="version", version=f"mouseemo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        if only is not None and name.replace("_", "-") != only:
            continue
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


def _chosen_parsers(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> list[argparse.ArgumentParser]:
    """``parser`` and the subcommand parsers ``args`` went through (``tail-shock``, then ``build``)."""
    chain = [parser]
    while True:
        subs = [a for a in chain[-1]._actions if isinstance(a, argparse._SubParsersAction)]
        chosen = [a.choices[getattr(args, a.dest)] for a in subs if getattr(args, a.dest, None) in a.choices]
        if not chosen:
            return chain
        chain.append(chosen[0])


def command_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    """``{parameter name: flag}`` of the command ``args`` ran: each option's ``dest`` -> its long
    flag, each positional -> its metavar. Errors name the library's parameters; the command line
    shows these instead (:func:`mouseemo.errors.name_flags`)."""
    flags: dict[str, str] = {}
    for p in _chosen_parsers(parser, args):
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
                continue
            if action.option_strings:
                flags[action.dest] = max(action.option_strings, key=len)
            else:
                flags[action.dest] = str(action.metavar or action.dest.upper())
    return flags


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in HYDRA_COMMANDS:
        from mouseemo import hydra_entry  # Lightning and Hydra load only for train and evaluate

        return hydra_entry.run(HYDRA_COMMANDS[argv[0]], argv[1:])
    handle_sigterm()

    def run() -> int:
        # the subcommands' modules load here, inside the guard: Ctrl-C or SIGTERM while they load
        # is a one-line stop, not a traceback
        known = {name.replace("_", "-") for name in COMMAND_MODULES}
        parser = build_parser(argv[0] if argv and argv[0] in known else None)
        args = parser.parse_args(argv)
        use_cli_flags(command_flags(parser, args))
        if not getattr(args, "func", None):
            parser.print_help()
            return 1
        return args.func(args)

    try:
        return run_guarded(run)
    finally:
        use_cli_flags({})  # a later call from Python reads parameter names again


if __name__ == "__main__":
    sys.exit(main())
