"""The benchmark scripts build on mouseemo's public API only, and each one starts.

Every ``benchmarks/*.py`` is parsed: no ``sys.path`` edits, no imports from ``tests``, no imports of
private mouseemo modules (a module path segment starting with ``_``); siblings such as
``benchmarks/_harness.py`` are imported by name, as a script's own folder is on ``sys.path``.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((REPO / "benchmarks").glob("*.py"))
MAIN_SCRIPTS = [p for p in SCRIPTS if not p.name.startswith("_")]


def _imported_modules(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            names += [f"{base}.{a.name}" for a in node.names]
    return names


def _sys_path_edits(tree: ast.AST) -> list[int]:
    """Lines that touch ``sys.path`` (``sys.path.insert``, ``sys.path = ...``, ``sys.path += ...``)."""
    lines = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "path"
            and isinstance(node.value, ast.Name)
            and node.value.id == "sys"
        ):
            lines.append(node.lineno)
    return lines


def problems(source: str) -> list[str]:
    tree = ast.parse(source)
    found = [f"line {n}: sys.path" for n in _sys_path_edits(tree)]
    for name in _imported_modules(tree):
        parts = name.split(".")
        if parts[0] == "tests":
            found.append(f"imports {name} from the tests")
        elif parts[0] == "mouseemo" and any(p.startswith("_") for p in parts[1:]):
            found.append(f"imports the private {name}")
        elif name.startswith("."):
            found.append(f"relative import {name}")
    return found


def test_the_checker_finds_what_it_should():
    bad = (
        "import sys\nsys.path.insert(0, '.')\nfrom tests.helpers import write_session\n"
        "from mouseemo.ops._hog import cupy_kernel\nimport mouseemo.ops._hog.api\n"
        "from mouseemo.ops import _hog\n"
    )
    found = problems(bad)
    assert len(found) == 5, found
    assert problems("import _harness\nfrom mouseemo.ops import hog\nimport sys\nsys.exit(0)\n") == []


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_benchmark_uses_the_public_api(script):
    assert problems(script.read_text()) == []


@pytest.mark.parametrize("script", MAIN_SCRIPTS, ids=lambda p: p.name)
def test_benchmark_help_runs(script):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, str(script.relative_to(REPO)), "--help"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage:" in proc.stdout


def test_markdown_fragment(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import _harness

    monkeypatch.setattr(sys, "argv", [str(REPO / "benchmarks" / "hog.py"), "--frames", "2"])
    report = _harness.Report(tmp_path / "results" / "hog.md", seed=7)
    report.line("context")
    report.table(["size", "max |diff|"])
    report.row(["256x256", "1e-7"])
    path = report.write()
    text = path.read_text().splitlines()
    assert text[0].startswith("_`python benchmarks/hog.py --frames 2` · seed 7 · ")
    assert "cores" in text[0] and text[0].endswith("_")
    assert text[2:] == ["context", "", "| size | max \\|diff\\| |", "|---|---|", "| 256x256 | 1e-7 |"]
    assert _harness.Report(None).write() is None
