"""Assemble ``docs/results.md`` and ``docs/real-mice.md`` from the fragments the benchmark scripts write.

Every measured table of mouseemo lives in ``docs/results.md``, except the real mice's, which have
their own page ``docs/real-mice.md``; nothing in either is typed by hand. Each benchmark writes its
table as a markdown fragment, ``docs/results/<name>.md``, whose first lines state the command, seed,
machine and date it was measured with (the scripts in ``benchmarks/`` do this with ``--markdown
PATH``). This script joins an intro and the fragments into each page:

* the fragments named in :data:`SECTIONS` come first, in that order, on their section's page; a
  fragment that does not exist yet is listed as "not yet measured", with the command that measures it;
* any other fragment in the folder follows on the results page, in alphabetical order of its name,
  so nothing a script wrote is left out.

Each page is written to a temporary file beside it and renamed, so a reader never sees half of it.

    python docs/make_results.py     # docs/results/*.md -> docs/results.md and docs/real-mice.md
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
    page: str = "results"  # results: docs/results.md | real_mice: docs/real-mice.md


SECTIONS: tuple[Section, ...] = (
    Section(
        "benchmark_report",
        "HOG vs learned models: the report cohort",
        "python evaluate.py experiment=benchmark_report benchmark.markdown=docs/results/benchmark_report.md",
    ),
    Section(
        "rateable",
        "Rateable frames: coverage against macro-F1",
        "python benchmarks/rateable.py --markdown docs/results/rateable.md",
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
        "Development mice: the recipe is chosen here",
        "python evaluate.py experiment=tail_shock data.root=data/tail_shock_dev "
        "benchmark.markdown=docs/results/tail_shock.md",
        "real_mice",
    ),
    Section(
        "tail_shock_tile",
        "Development mice, whole 232x140 tile (the second condition)",
        "python evaluate.py experiment=tail_shock data.root=data/tail_shock_dev data.crop=none "
        "data.image_size=[72,120] benchmark.markdown=docs/results/tail_shock_tile.md",
        "real_mice",
    ),
    Section(
        "tail_shock_heldout",
        "Kept-back mice: the fixed recipe, nothing chosen",
        "python evaluate.py experiment=tail_shock_heldout data.root=data/tail_shock_all "
        "benchmark.markdown=docs/results/tail_shock_heldout.md",
        "real_mice",
    ),
    Section(
        "tail_shock_intensity",
        "Per-stimulus readouts against shock current (development mice; settings chosen here)",
        "python benchmarks/tail_shock_intensity.py --markdown docs/results/tail_shock_intensity.md",
        "real_mice",
    ),
    Section(
        "tail_shock_intensity_heldout",
        "Per-stimulus readouts on the kept-back mice, settings unchanged",
        "python benchmarks/tail_shock_intensity.py --src data/der_kept_back "
        "--markdown docs/results/tail_shock_intensity_heldout.md",
        "real_mice",
    ),
    Section(
        "correlates",
        "Neurons vs expressions: recall and precision by session length",
        "python benchmarks/correlates.py --minutes 4 10 --seeds 0 1 --markdown docs/results/correlates.md",
    ),
    Section(
        "correlates_calibration",
        "Neurons vs expressions: the null on untuned neurons of six kinds",
        "python benchmarks/correlates.py --calibration --calibration-seeds 12 "
        "--markdown docs/results/correlates_calibration.md",
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
    Section(
        "gpu_pipeline",
        "One GPU: decode -> HOG / CNN on the device",
        "python benchmarks/gpu_pipeline.py --markdown docs/results/gpu_pipeline.md",
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


REAL_MICE_INTRO = """\
# Real mice: tail shock

Pain against neutral on head-fixed mice of the public DER tail-shock set (see
[the tail-shock guide](guides/tail-shock.md) for the data and the commands), leave one mouse out, on
the face crop. As on the [results page](results.md), every table was written by the command that
heads it, with its seed, machine and date; nothing is typed by hand.

How to read the tables:

* **Face-free rows come first.** `timing` returns the stimulus log's windows (the labels are those
  windows, so it is perfect by construction); `timing_phase` calls pain at the same phase of every
  trial, sham trials included, from the trial onsets alone; `pixel_change_trial` and
  `pixel_change_session` are the mean pixel change from the trial's own pre-shock frames and from
  the session's median frame. A learned model has shown something only where it beats them.
* **Two tracks.** Stimulus-locked models are given each trial's onset (the `trial_*` models,
  `hog_rf_trial`, `pixel_change_trial`); log-free models get no onset at test time (`cnn`,
  `motion_cnn`, the HOG rows with the session's median face as neutral, `pixel_change_session`).
* **`window_macro_f1`** scores only the frames at the stimulus phase of every trial, shock and sham:
  there timing is at chance, and only telling a shock trial from a sham trial counts.
* **Controls.** `shuffle_*` trains on circularly shifted labels; `permute_*` trains with each
  training mouse's trials permuted, so labels keep their phase but move to other trials (mean over
  draws and folds, and the highest draw). Both are tested on the real labels. The permutation keeps
  every pain label inside a stimulus window, and most of the permuted pain labels still land on shock
  trials, so a model that reads any response after the trigger keeps much of its score under it:
  a high `permute_*` says the model's score does not depend on which trials were shocks. The
  timing rows' controls test nothing: their input is the log or the trial's phase, which no label
  control changes.
* **No selection on the test mice.** The recipe (epochs, stride, class weighting, crop, HOG cells) is
  fixed in `conf/experiment/tail_shock.yaml`, chosen on the three development mice; the kept-back
  table runs it unchanged on three other mice, each tested after training on the other five.

What the tables show, as of the runs below (read the tables for the numbers):

* **Stimulus-locked track.** On the development mice `trial_cnn` beats `pixel_change_trial`, by less
  than the margin the project set itself (five points of macro-F1). On the kept-back mice it ties
  the pixel change overall and falls behind it at the stimulus phase. On these data the
  trial-locked face models have not shown more than the movement since the stimulus.
* **Log-free track.** `motion_cnn` beats the pixel change from the session's median frame by a wide
  margin and every HOG row on both cohorts, and at the stimulus phase it tells shock trials from sham
  ones better than the pixel change; on the kept-back mice it stays below the project's goal, `cnn`
  calls every frame neutral on two of them, and one mouse (`ECO_3_00B_M`) defeats every learned
  model.
* **Controls.** The circular shift stays near chance for most models and folds, not all: a shift of
  nearly whole trials keeps the labels' phase. No learned model keeps the permutation control near
  chance (see the controls bullet above for why).
* **HOG.** `hog_proto` calls nearly every frame neutral on the face crop (marked in the tables);
  `hog_rf` with the session's median face is the best HOG row of the log-free track.
* **Readouts.** Graded by current within each mouse, `departure` matches `pixel_change_trial` on the
  kept-back mice and `intensity` falls behind both.
"""


def fragments(folder: Path) -> dict[str, Path]:
    """The fragments in ``folder`` by name (file stem)."""
    return {p.stem: p for p in sorted(folder.glob("*.md"))} if folder.is_dir() else {}


#: The pages and their intros: ``results`` also takes every fragment no section names.
PAGES = {"results": INTRO, "real_mice": REAL_MICE_INTRO}


def render(folder: Path, page: str = "results") -> str:
    """A whole page: the intro, the known sections in order, then (on ``results``) any other fragment."""
    found = fragments(folder)
    parts = [PAGES[page]]
    if page == "results":
        parts.append(
            "Real mice (the tail-shock benchmark and its readouts) have [their own page](real-mice.md).\n"
        )
        for other in SECTIONS:
            if other.page != page:
                found.pop(other.name, None)
    else:
        found = {s.name: found[s.name] for s in SECTIONS if s.page == page and s.name in found}
    missing = []
    for section in [s for s in SECTIONS if s.page == page]:
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
    parser = argparse.ArgumentParser(
        description="Assemble docs/results.md and docs/real-mice.md from docs/results/*.md."
    )
    parser.add_argument("--fragments", type=Path, default=DOCS / "results", help="fragment folder")
    parser.add_argument("--out", type=Path, default=DOCS / "results.md", help="page to write")
    parser.add_argument(
        "--real-mice-out", type=Path, default=DOCS / "real-mice.md", help="the real-mice page to write"
    )
    args = parser.parse_args(argv)
    write_atomic(args.out, render(args.fragments))
    write_atomic(args.real_mice_out, render(args.fragments, "real_mice"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
