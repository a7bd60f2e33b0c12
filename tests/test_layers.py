"""The package's import layers (``[tool.importlinter]`` in pyproject.toml) hold."""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter not installed (dev extra)")
def test_import_layers_hold():
    proc = subprocess.run(
        ["lint-imports", "--config", str(REPO / "pyproject.toml")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 kept, 0 broken" in proc.stdout


def test_only_the_cli_imports_the_commands():
    """Commands are adapters: nothing in the library, the tests' helpers or benchmarks builds on them."""
    users = []
    for folder in ("mouseemo", "benchmarks"):
        for path in (REPO / folder).rglob("*.py"):
            rel = path.relative_to(REPO).as_posix()
            if rel.startswith("mouseemo/commands/") or rel == "mouseemo/cli.py":
                continue
            text = path.read_text()
            if "mouseemo.commands" in text or "from mouseemo import commands" in text:
                users.append(rel)
    assert users == []
