"""Library errors name parameters, so they read right from Python; the command line shows its flags
in their place."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from mouseemo.cli import main
from mouseemo.data.tail_shock import build_tail_shock_sessions
from mouseemo.errors import ConfigError, name_flags
from mouseemo.inference.scorers import load_scorer
from tests.helpers import fake_tail_shock_mouse

PACKAGE = Path(__file__).resolve().parents[1] / "mouseemo"
#: A command-line flag inside a message: ``--out``, ``--neutral-until-s``.
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
#: Modules that speak the command line: the subcommands and the parser.
CLI_MODULES = ("commands/", "cli.py")


def test_name_flags_swaps_only_mapped_parameters():
    flags = {"overwrite": "--overwrite", "neutral_until_s": "--neutral-until-s", "inputs": "INPUT"}
    msg = "set `overwrite`; `neutral_until_s` needs `neutral`; each `inputs`; keep `a-b` and overwrite"
    assert name_flags(msg, flags) == (
        "set --overwrite; --neutral-until-s needs `neutral`; each INPUT; keep `a-b` and overwrite"
    )


def test_python_callers_see_parameter_names_and_the_cli_its_flags(tmp_path, capsys):
    with pytest.raises(ConfigError) as err:
        load_scorer(prototypes=None, ckpt=None, device="cpu")
    assert "`prototypes`" in str(err.value) and "`ckpt`" in str(err.value)
    assert not FLAG.search(str(err.value))
    fake_tail_shock_mouse(tmp_path / "src", "m1")
    (tmp_path / "out" / "m1" / "tail_shock").mkdir(parents=True)  # a folder the builder did not write
    with pytest.raises(ConfigError, match="set `overwrite` to replace it"):
        build_tail_shock_sessions(tmp_path / "src", tmp_path / "out")
    assert main(["tail-shock", "build", "--src", str(tmp_path / "src"), "--out", str(tmp_path / "out")]) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("mouseemo: error: ") and "set --overwrite to replace it" in line, line
    assert "`" not in line


def _error_strings(tree: ast.AST) -> list[tuple[int, str]]:
    """String pieces of every ``raise`` statement, and of every ``hint=`` handed to a check."""
    found = []
    for node in ast.walk(tree):
        roots = []
        if isinstance(node, ast.Raise) and node.exc is not None:
            roots.append(node.exc)
        elif isinstance(node, ast.Call):
            roots += [k.value for k in node.keywords if k.arg == "hint"]
        for root in roots:
            found += [
                (n.lineno, n.value)
                for n in ast.walk(root)
                if isinstance(n, ast.Constant) and isinstance(n.value, str)
            ]
    return found


def test_the_scan_finds_a_flag_in_a_raise():
    tree = ast.parse('def f():\n    raise ValueError(f"{x}: pass --overwrite")\n')
    assert [FLAG.findall(s) for _, s in _error_strings(tree)] == [["--overwrite"]]


def test_library_errors_name_no_command_line_flags():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(CLI_MODULES):
            continue
        for line, text in _error_strings(ast.parse(path.read_text(), str(path))):
            if FLAG.search(text):
                offenders.append(f"{rel}:{line}: {text.strip()}")
    assert not offenders, "library errors that name flags (name the parameter in backticks):\n" + "\n".join(
        offenders
    )
