"""The package's import layers (``[tool.importlinter]`` in pyproject.toml) hold."""

import os
import shutil
import subprocess
import sys
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
    assert "3 kept, 0 broken" in proc.stdout


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


def test_overlay_maps_do_not_load_the_captum_attribution_module():
    """``predict --overlay-map`` (the pipeline and the overlay drawing) never imports captum's code."""
    code = (
        "import sys, mouseemo.inference.pipeline, mouseemo.viz.overlay, mouseemo.commands.predict; "
        "bad = [m for m in sys.modules if 'attribution' in m or m.split('.')[0] == 'captum']; "
        "assert not bad, bad"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]


MAX_LINES = 500


def test_no_module_is_over_500_lines():
    """One concern per module: none of mouseemo's files is longer than :data:`MAX_LINES` lines."""
    long = {}
    for path in (REPO / "mouseemo").rglob("*.py"):
        rel = path.relative_to(REPO).as_posix()
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES:
            long[rel] = lines
    assert long == {}
