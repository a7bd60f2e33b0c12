"""Start-up of one subcommand: only its module loads; Lightning and matplotlib wait until needed."""

import subprocess
import sys
from pathlib import Path

import pytest

from mouseemo.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_predict_start_up_imports_neither_lightning_nor_matplotlib():
    code = (
        "import sys; from mouseemo.cli import build_parser; p = build_parser('predict'); "
        "p.parse_args(['predict', 'v.mp4', '--prototypes', 'p.npz', '--out', 'o']); "
        "print(sorted(m for m in ('pytorch_lightning', 'matplotlib', 'mouseemo.commands.tail_shock') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr


@pytest.mark.parametrize("command", ["tail-shock", "predict", "live"])
def test_each_subcommand_still_parses_alone(command, capsys):
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0 and f"usage: mouseemo {command}" in capsys.readouterr().out


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in ("predict", "live", "tail-shock", "train"))
