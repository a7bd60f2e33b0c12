"""Assemble ``docs/results.md`` from the fragments the benchmark scripts write.

Every measured table of mouseemo lives in ``docs/results.md``, and nothing in it is typed by hand.
Each benchmark writes its table as a markdown fragment, ``docs/results/<name>.md``, whose first
lines state the command, seed, machine and date it was measured with (the scripts in
``benchmarks/`` do this with ``--markdown PATH``). This script joins an intro paragraph and the
fragments into one page:

* the fragments named in :data:`SECTIONS` come first, in that order (the order of the guides:
  benchmark, training, HOG, prediction, live, tail shock, correlates, joint encoder, throughput);
  a fragment that does not exist yet is listed as "not yet measured", with the command that
  measures it;
* any other fragment in the folder follows, in alphabetical order of its name, so nothing a script
  wrote is left out.

The page is written to a temporary file beside it and renamed, so a reader never sees half of it.

    python docs/make_results.py                 # docs/results/*.md -> docs/results.md
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

DOCS = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Section:
    """One measured table: its fragment ``<name>.md``, a heading, and the command that writes it."""

    name: str
    title: str
    command: str


SECTIONS: tuple[Section, ...] = (
    Section(
        "benchmark_report",
        "HOG vs learned models: the report cohort",
        "python evaluate.py experiment=benchmark_report benchmark.markdown=docs/results/benchmark_report.md",
    ),
    Section("hog", "HOG throughput", "python benchmarks/hog.py --markdown docs/results/hog.md"),
    Section(
        "predict",
        "`mouseemo predict` throughput",
        "python benchmarks/predict.py --markdown docs/results/predict.md",
    ),
    Section("live", "`mouseemo live` latency", "python benchmarks/live.py --markdown docs/results/live.md"),
    Section(
        "tail_shock",
        "Real mice: tail shock, leave one mouse out",
        "python evaluate.py experiment=tail_shock data.root=data/tail_shock "
        "benchmark.markdown=docs/results/tail_shock.md",
    ),
    Section(
        "tail_shock_intensity",
        "Real mice: per-stimulus readouts against shock current",
        "python benchmarks/tail_shock_intensity.py --markdown docs/results/tail_shock_intensity.md",
    ),
    Section(
        "correlates",
        "Neurons vs expressions: recall and precision by session length",
        "python benchmarks/correlates.py --seeds 0 1 2 3 --markdown docs/results/correlates.md",
    ),
    Section(
        "joint",
        "Joint face-neural encoder vs raw activity and CEBRA",
        "python benchmarks/joint.py --seed 1 --epochs 15 --markdown docs/results/joint.md"
        " model.neural_encoder.hidden=128 model.neural_encoder.kernel_size=5 data.window=16",
    ),
    Section(
        "joint_new_session",
        "Joint encoder on a new imaging day",
        "python benchmarks/joint_new_session.py --markdown docs/results/joint_new_session.md"
        " model.neural_encoder.hidden=128 model.neural_encoder.kernel_size=5 data.window=16",
    ),
    Section(
        "train_throughput",
        "Training throughput",
        "python benchmarks/train_throughput.py --markdown docs/results/train_throughput.md",
    ),
    Section(
        "gpu_check",
        "One GPU: tests, HOG, training and predict",
        "python benchmarks/gpu_check.py --markdown docs/results/gpu_check.md",
    ),
)

INTRO = """\
# Results

Every measured number of mouseemo is on this page, and every table on it was written by the
script that measured it: each section starts with the command, seed, machine and date it came from.
Nothing here is typed by hand. To measure a table again, run its command; the script rewrites its
fragment in `docs/results/`, and `python docs/make_results.py` rebuilds this page (see
[Development](guides/development.md#benchmarks-and-results)). Numbers measured on different
machines or dates are not comparable; rerun the baseline beside a change before comparing.
"""


def fragments(folder: Path) -> dict[str, Path]:
    """The fragments in ``folder`` by name (file stem)."""
    return {p.stem: p for p in sorted(folder.glob("*.md"))} if folder.is_dir() else {}


def render(folder: Path) -> str:
    """The whole page: the intro, the known sections in order, then any other fragment."""
    found = fragments(folder)
    parts = [INTRO]
    missing = []
    for section in SECTIONS:
        path = found.pop(section.name, None)
        if path is None:
            missing.append(section)
        else:
            parts.append(_fragment(section.title, path))
    for name, path in sorted(found.items()):
        parts.append(_fragment(name.replace("_", " "), path))
    if missing:
        lines = ["## Not yet measured", ""]
        lines += [f"- {s.title}: not yet measured: run `{s.command}`" for s in missing]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def _fragment(title: str, path: Path) -> str:
    return f"## {title}\n\n{path.read_text(encoding='utf-8').strip()}\n"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Assemble docs/results.md from docs/results/*.md.")
    parser.add_argument("--fragments", type=Path, default=DOCS / "results", help="fragment folder")
    parser.add_argument("--out", type=Path, default=DOCS / "results.md", help="page to write")
    args = parser.parse_args(argv)
    write_atomic(args.out, render(args.fragments))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
