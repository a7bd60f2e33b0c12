"""The README and the guides in docs/ say what the code does.

Every command line in their ``bash`` blocks is checked: ``mouseemo <cmd>`` flags against that
subcommand's ``--help``; ``python train.py`` / ``evaluate.py`` (and ``mouseemo train`` / ``evaluate``)
overrides by composing the config from conf/ with Hydra; ``python benchmarks/x.py`` and
``python docs/x.py`` flags against the options the script's parser declares (its ``--help``). ``python docs/make_results.py`` runs as
written (on a copy of docs/), and what it writes must be the committed docs/results.md. Also: the
README stays short and keeps the install / run / test commands, every relative link resolves, and
no measured number is typed into the README or the guides (they live in docs/results.md).
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import shlex
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser

from mouseemo.cli import main as mouseemo_main
from mouseemo.utils.configs import config_dir
from mouseemo.utils.resolvers import register_resolvers

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
GUIDES = [README, *sorted(p for p in DOCS.rglob("*.md") if p.parent != DOCS / "results")]
PLACEHOLDERS = {"$RUN": "logs/train/runs/RUN", "$OUT": "/tmp/out", "$PWD": str(ROOT)}
TOOLS = {"pip", "pytest", "ruff", "lint-imports", "duplicates", "mkdocs", "bash", "wandb"}
FLAG = re.compile(r"(?<![\w-])--[A-Za-z][\w-]*")
FENCE = re.compile(r"^([ \t]*)```(\w*)[^\n]*\n(.*?)^\1```[ \t]*$", re.S | re.M)


def bash_commands(path: Path) -> list[str]:
    """The command lines of a file's ``bash`` blocks, continuation lines joined, comments kept."""
    commands = []
    for block in FENCE.finditer(path.read_text(encoding="utf-8")):
        if block.group(2) != "bash":
            continue
        text = re.sub(r"\\\n\s*", " ", block.group(3))
        commands += [
            line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")
        ]
    return commands


def split_commands(line: str) -> list[list[str]]:
    """One shell line as its ``&&``-separated commands, each as words, env assignments dropped."""
    words = shlex.split(line, comments=True)
    out, current = [], []
    for w in [*words, "&&"]:
        if w == "&&":
            while current and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", current[0]):
                current.pop(0)
            if current:
                out.append(current)
            current = []
        else:
            current.append(w)
    return out


def expand(word: str) -> str:
    for name, value in PLACEHOLDERS.items():
        word = word.replace(name, value)
    return word


ALL_COMMANDS = [(p, line) for p in GUIDES for line in bash_commands(p)]


@cache
def mouseemo_help(*command: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as stop:
        mouseemo_main([*command, "--help"])
    assert stop.value.code == 0, command
    return out.getvalue()


def declared_flags(path: Path) -> set[str]:
    """The options a script's parser declares (what its ``--help`` lists), read from its source:
    every ``add_argument("--x", ...)`` in it, and in ``benchmarks/_harness.py`` when it imports that."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    flags = {"--help"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
            flags |= {
                a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("--")
            }
        names = [a.name for a in node.names] if isinstance(node, ast.Import | ast.ImportFrom) else []
        module = node.module if isinstance(node, ast.ImportFrom) else None
        harness = path.parent / "_harness.py"
        if ("_harness" in names or module == "_harness") and harness.is_file() and harness != path:
            flags |= declared_flags(harness)
    return flags


@cache
def script_flags(script: str) -> str:
    return " ".join(sorted(declared_flags(ROOT / script)))


def check_flags(words: list[str], help_text: str, where: str) -> None:
    used = {m.group(0) for w in words for m in FLAG.finditer(w.split("=", 1)[0] if w.startswith("--") else w)}
    offered = set(FLAG.findall(help_text))
    assert used <= offered, f"{where}: {sorted(used - offered)} not in --help"


def sweep_variants(overrides: list[str]) -> list[list[str]]:
    """A multirun's overrides as single runs: each sweep at its first value, then each value of each
    sweep in turn with the others at their first."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    values = [list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.input_line] for o in parsed]
    keys = [o.get_key_element() + "=" if o.is_sweep_override() else "" for o in parsed]
    first = [k + v[0] for k, v in zip(keys, values, strict=True)]
    variants = [first]
    for i, vs in enumerate(values):
        variants += [[*first[:i], keys[i] + v, *first[i + 1 :]] for v in vs[1:]]
    return variants


def compose_overrides(task: str, overrides: list[str], tmp_path: Path) -> None:
    overrides = [expand(o) for o in overrides]
    runs = [overrides]
    if "-m" in overrides or "--multirun" in overrides:
        runs = sweep_variants([o for o in overrides if o not in ("-m", "--multirun")])
    register_resolvers()
    for run in runs:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            compose(
                config_name=task, overrides=[f"paths.root_dir={tmp_path}", *run], return_hydra_config=True
            )
    GlobalHydra.instance().clear()


def check_command(words: list[str], where: str, tmp_path: Path) -> None:
    head = words[0]
    if head == "mouseemo":
        sub = words[1:3] if words[1] == "tail-shock" else words[1:2]
        if sub[0] in ("train", "evaluate"):
            compose_overrides(sub[0], words[2:], tmp_path)
        else:
            check_flags(words[1 + len(sub) :], mouseemo_help(*sub), where)
    elif head in ("python", "python3"):
        script = words[1]
        if script in ("train.py", "evaluate.py"):
            compose_overrides(script.removesuffix(".py"), words[2:], tmp_path)
        elif script.startswith(("benchmarks/", "docs/")) and script.endswith(".py"):
            assert (ROOT / script).is_file(), f"{where}: no {script}"
            if any(FLAG.search(w) for w in words[2:]):
                check_flags(words[2:], script_flags(script), where)
        else:
            pytest.fail(f"{where}: unknown script {script}")
    elif head in TOOLS:
        if head == "bash":
            assert (ROOT / words[1]).is_file(), f"{where}: no {words[1]}"
        if head == "pytest":
            for w in words[1:]:
                marks = ("slow", "gpu", "not slow", "not gpu")
                assert w.startswith("-") or w in marks or w.isdigit() or (ROOT / w).exists(), f"{where}: {w}"
    else:
        pytest.fail(f"{where}: unknown command {head!r}: teach tests/test_docs.py how to check it")


@pytest.mark.parametrize(
    "path, line", ALL_COMMANDS, ids=[f"{p.relative_to(ROOT)}:{i}" for i, (p, _) in enumerate(ALL_COMMANDS)]
)
def test_bash_command(path, line, tmp_path):
    for words in split_commands(line):
        check_command(words, f"{path.relative_to(ROOT)}: {line}", tmp_path)


def test_results_commands():
    """The command make_results.py prints for each missing table takes the flags it names
    (``--markdown`` once the benchmark harness provides it)."""
    sys.path.insert(0, str(DOCS))
    try:
        import make_results
    finally:
        sys.path.remove(str(DOCS))
    harness = (ROOT / "benchmarks" / "_harness.py").is_file()
    for section in make_results.SECTIONS:
        words = [w for w in shlex.split(section.command)]
        if words[1].startswith("benchmarks/") and not harness:
            words = [w for i, w in enumerate(words) if w != "--markdown" and words[i - 1] != "--markdown"]
        check_command(words, f"make_results.SECTIONS[{section.name}]", Path("/tmp"))


def test_make_results_runs_as_written(tmp_path):
    """``python docs/make_results.py`` on a copy of docs/ writes exactly the committed results.md."""
    copy = tmp_path / "docs"
    shutil.copytree(DOCS, copy, ignore=shutil.ignore_patterns("results.md", "real-mice.md", "img"))
    done = subprocess.run(
        [sys.executable, "docs/make_results.py"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    for page in ("results.md", "real-mice.md"):
        written = (copy / page).read_text(encoding="utf-8")
        assert written == (DOCS / page).read_text(encoding="utf-8"), (
            f"docs/{page} is out of date: run `python docs/make_results.py`"
        )
    assert not [p for p in copy.iterdir() if p.name.endswith(".tmp")]


def test_readme_is_short_and_keeps_the_three_commands():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200
    blocks = [b.group(3) for b in FENCE.finditer(README.read_text(encoding="utf-8")) if b.group(2) == "bash"]
    first = [line.strip() for line in blocks[0].splitlines()]
    assert first[:3] == ['pip install -e ".[dev]"', "python train.py", "pytest"]


def prose(path: Path) -> str:
    """A markdown file without its fenced blocks and inline code."""
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return re.sub(r"`[^`\n]*`", "", text)


@pytest.mark.parametrize("path", GUIDES, ids=[str(p.relative_to(ROOT)) for p in GUIDES])
def test_relative_links_resolve(path):
    for target in re.findall(r"\]\(([^)\s]+)\)", prose(path)):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        file = (path.parent / target.split("#", 1)[0]).resolve()
        assert file.exists(), f"{path.relative_to(ROOT)} links to {target}, which does not exist"


@pytest.mark.parametrize(
    "path",
    [p for p in GUIDES if p.name not in ("results.md", "real-mice.md")],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_no_measured_numbers_in_prose(path):
    """Scores, timings and rates belong in docs/results.md, written by the benchmarks."""
    text = re.sub(r">=\s*\d+(?:\.\d+)*", "", prose(path))  # version constraints are not measurements
    found = re.findall(r"(?<![\w.])\d+\.\d+(?:\s*(?:±|%|ms|s\b|×|fps|frames/s|minutes))?", text)
    assert not found, f"{path.relative_to(ROOT)}: {found}"
