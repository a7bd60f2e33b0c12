"""The benchmark's summary: scores per model as mean ± sd over folds, per-class F1, and the files
``benchmark.csv``, ``benchmark_jobs.csv``, ``benchmark.md`` and ``benchmark.png``."""

from __future__ import annotations

import csv
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mouseemo.experiments.collapse import folds_note
from mouseemo.utils.io import atomic_path, write_text_atomic
from mouseemo.viz.plots import plt, save_figure

#: Test metrics reported per model (and, prefixed ``shuffle_``, for its label-shuffle control).
SCORES = ("accuracy", "balanced_accuracy", "macro_f1")
#: Control columns of the tables (:mod:`mouseemo.data.label_controls`), where those controls ran.
CONTROL_COLUMNS = ("shuffle_macro_f1", "permute_macro_f1", "permute_macro_f1_max", "control_macro_f1_max")


def _mean(values: list[float]) -> float:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(vals)) if vals else float("nan")


def _sd(values: list[float]) -> float:
    """Sample standard deviation (ddof 1) over folds; NaN with fewer than two values."""
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.std(vals, ddof=1)) if len(vals) > 1 else float("nan")


def _max(values: list[float]) -> float:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.max(vals)) if vals else float("nan")


def _control(job: dict) -> str:
    """The job's label control (``shift``, ``permute``; ``""`` for none); older job records only say
    ``shuffle`` (the shift)."""
    return job.get("control") or ("shift" if job.get("shuffle") else "")


def summarize(jobs: list[dict], models: list[str], classes: list[str], labels: str = "") -> list[dict]:
    """One row per model: test scores as mean and sample sd over folds, its shuffle control's mean,
    per-class F1 (mean and sd over the folds whose test frames hold the class)."""
    rows = []
    for name in models:
        real = [j for j in jobs if j["model"] == name and not j["shuffle"]]
        ctrl = [j for j in jobs if j["model"] == name and j["shuffle"] and _control(j) == "shift"]
        perm = [j for j in jobs if j["model"] == name and j["shuffle"] and _control(j) == "permute"]
        row: dict[str, Any] = {"labels": labels, "model": name}
        if any(j.get("track") for j in real):
            row["track"] = real[0]["track"]
        for key in SCORES:
            vals = [j["metrics"].get(f"test/{key}") for j in real]
            row[key] = _mean(vals)
            row[f"{key}_std"] = _sd(vals)
        for key in SCORES:
            row[f"shuffle_{key}"] = _mean([j["metrics"].get(f"test/{key}") for j in ctrl])
        windows = [j["metrics"].get("test/window_macro_f1") for j in real]
        if any(v is not None for v in windows):  # sessions of trials: the stimulus phase of every trial
            row["window_macro_f1"] = _mean(windows)
            row["window_macro_f1_std"] = _sd(windows)
        if perm:  # several draws per fold: their mean, and the highest draw of any fold
            f1s = [j["metrics"].get("test/macro_f1") for j in perm]
            row["permute_macro_f1"] = _mean(f1s)
            row["permute_macro_f1_max"] = _max(f1s)
            row["permute_draws"] = len(perm)
        if ctrl or perm:
            row["control_macro_f1_max"] = _max([j["metrics"].get("test/macro_f1") for j in ctrl + perm])
        row["num_folds"] = len(real)
        row["num_test_frames"] = sum(j["num_test_frames"] for j in real)
        row["test_animals"] = " ".join(sorted({a for j in real for a in j["test_animals"]}))
        absent = {c for j in real for c in j["missing"]}
        row["missing_test_classes"] = " ".join(c for c in classes if c in absent)
        row["wall_time_s"] = int(round(sum(j["metrics"].get("wall_time_s", 0.0) for j in real)))
        row["collapsed"] = folds_note([j.get("collapse") for j in real])  # predicts one class
        for c in classes:  # undefined (empty) where the test frames hold no such class
            vals = [j["metrics"].get(f"test/f1_{c}") for j in real if c not in j["missing"]]
            row[f"f1_{c}"] = _mean(vals)
            row[f"f1_{c}_std"] = _sd(vals)
            row[f"f1_{c}_folds"] = sum(1 for v in vals if v is not None and not math.isnan(v))
        rows.append(row)
    absent = {c for r in rows for c in r["missing_test_classes"].split()}
    missing = [c for c in classes if c in absent]
    if missing:
        warnings.warn(
            f"the held-out test frames{f' ({labels} labels)' if labels else ''} contain no {missing}: "
            "F1 of those classes is undefined and macro-F1 averages over the classes that are present "
            "or predicted",
            stacklevel=2,
        )
    return rows


def format_value(v: Any) -> str:
    """A table cell: floats to 3 decimals, NaN empty."""
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.3f}"
    return str(v)


def mean_sd(mean: float, sd: float) -> str:
    """``"0.812 ± 0.034"``; the mean alone when the sd is undefined; empty when the mean is."""
    if mean is None or math.isnan(mean):
        return ""
    return f"{mean:.3f}" if sd is None or math.isnan(sd) else f"{mean:.3f} ± {sd:.3f}"


def _cell(row: dict, col: str) -> str:
    if col == "model" and row.get("collapsed"):  # a row that predicts one class is marked
        return f"{row['model']} ({row['collapsed']})"
    if f"{col}_std" in row:
        return mean_sd(row[col], row[f"{col}_std"])
    return format_value(row[col])


def markdown_table(rows: list[dict]) -> str:
    """Scores per model (and label source): mean ± sd over folds where there are several; the
    controls' macro-F1 (the shift's mean; the permutation's mean and highest draw; the highest of any
    control job) where they ran."""
    lead = ["labels"] if any(r.get("labels") for r in rows) else []
    lead += ["track"] if any(r.get("track") for r in rows) else []
    controls = [c for c in CONTROL_COLUMNS if any(c in r and not math.isnan(r[c]) for r in rows)]
    window = ["window_macro_f1"] if any("window_macro_f1" in r for r in rows) else []
    cols = [*lead, "model", *SCORES, *window, *controls, "num_folds", "num_test_frames", "wall_time_s"]
    rows = [{c: r.get(c, float("nan")) for c in cols} | r for r in rows]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(_cell(r, c) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


#: How the tables name the tracks of ``benchmark.tracks``.
TRACK_TITLES = {
    "stimulus_locked": "Stimulus-locked track (the model is given each trial's onset)",
    "log_free": "Log-free track (no onsets at test time)",
}


def track_tables(rows: list[dict]) -> str:
    """One table per track (in the order they first appear), or one table when no track is set."""
    tracks = list(dict.fromkeys(r.get("track", "") for r in rows))
    if tracks == [""]:
        return markdown_table(rows)
    parts = []
    for t in tracks:
        title = TRACK_TITLES.get(t, t or "no track")
        parts.append(f"### {title}\n\n" + markdown_table([r for r in rows if r.get("track", "") == t]))
    return "\n\n".join(parts)


def class_table(rows: list[dict], classes: list[str]) -> str:
    """Per-class test F1 per model (and label source): mean ± sd over the folds holding the class;
    ``n/a`` where no fold's test frames hold it."""
    lead = ["labels"] if any(r.get("labels") for r in rows) else []
    cols = [*lead, "model", *classes]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        cells = [r["labels"]] if lead else []
        cells.append(r["model"])
        for c in classes:
            cell = mean_sd(r[f"f1_{c}"], r[f"f1_{c}_std"]) or "n/a"
            folds = r.get(f"f1_{c}_folds", r["num_folds"])
            if cell != "n/a" and folds < r["num_folds"]:
                cell += f" ({folds}/{r['num_folds']} folds)"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_outputs(
    out: Path,
    rows: list[dict],
    jobs: list[dict],
    classes: list[str],
    fragment: Path | None = None,
    header: str = "",
) -> None:
    """``benchmark.csv`` (one row per model and label source), ``benchmark_jobs.csv``, ``benchmark.md``,
    ``benchmark.png``; and, with ``fragment``, the tables as a results fragment (``docs/results/``)
    whose first line is ``header`` (the command, seed, machine and date:
    :func:`mouseemo.utils.machine.results_header`)."""
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "benchmark.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(dict.fromkeys(k for r in rows for k in r)), restval="")
        w.writeheader()
        w.writerows({k: format_value(v) for k, v in r.items()} for r in rows)
    cols = [
        "labels",
        "model",
        "shuffle",
        "control",
        "draw",
        "fold",
        *SCORES,
        "num_test_frames",
        "test_animals",
    ]
    cols += ["missing"]
    cols += [f"f1_{c}" for c in classes] + ["window_macro_f1", "wall_time_s"]
    with atomic_path(out / "benchmark_jobs.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for j in jobs:
            m = j["metrics"]
            w.writerow(
                [j.get("labels", ""), j["model"], j["shuffle"], _control(j), j.get("draw", 0)]
                + ["" if j["fold"] is None else j["fold"]]
                + [format_value(m.get(f"test/{k}", float("nan"))) for k in SCORES]
                + [j["num_test_frames"], " ".join(j["test_animals"]), " ".join(j["missing"])]
                + [
                    "" if c in j["missing"] else format_value(float(m.get(f"test/f1_{c}", float("nan"))))
                    for c in classes
                ]
                + [format_value(float(m.get("test/window_macro_f1", float("nan")))), m.get("wall_time_s", "")]
            )
    chance = 1.0 / max(len(classes), 1)
    folds = max((r["num_folds"] for r in rows), default=1)
    spread = f" Scores are the mean ± sample sd over {folds} leave-one-animal-out folds." if folds > 1 else ""
    sources = sorted({r["labels"] for r in rows if r.get("labels")})
    labels_note = (
        " `labels`: where training and test labels come from (`truth`: the hidden expression of "
        "synthetic data; `events`: the stimulus windows of events.csv, frames outside every window "
        "neutral); within one label source every model is tested on the same frames and labels."
        if sources
        else ""
    )
    window_note = (
        " `window_macro_f1`: macro-F1 on the frames at the stimulus phase of every trial, sham trials "
        "included, where the trial's timing alone is at chance: only a model that tells a stimulus "
        "trial from a sham trial scores there."
        if any("window_macro_f1" in r for r in rows)
        else ""
    )
    permute_note = (
        " `permute_*`: the same model trained with each training session's trials permuted (labels move "
        "with their trial and keep their phase): the mean over draws and folds, and the highest draw. "
        "`control_macro_f1_max`: the highest macro-F1 of any control job of any fold."
        if any("permute_macro_f1" in r for r in rows)
        else ""
    )
    text = (
        "# HOG vs learned expression classifiers\n\n"
        "Test scores on held-out animals; `shuffle_*` is the same model trained on circularly shifted "
        f"labels (a control that should stay near chance, balanced accuracy {chance:.3f}).{spread}"
        f"{labels_note}{window_note}{permute_note}\n\n"
        + track_tables(rows)
        + "\n\n## Per-class test F1\n\n"
        + class_table(rows, classes)
        + "\n"
    )
    write_text_atomic(out / "benchmark.md", text)
    if fragment is not None:
        body = text.split("\n", 2)[2]  # without the page's own heading
        write_text_atomic(fragment, f"{header}\n\n{body.replace('## Per-class', '#### Per-class')}")
    plot_benchmark(rows, out / "benchmark.png", chance)


def plot_benchmark(rows: list[dict], path: Path, chance: float) -> Path:

    names = [f"{r['model']}\n({r['labels']})" if r.get("labels") else r["model"] for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(1.8 + 1.4 * len(rows), 3.4))
    for k, (key, label, color) in enumerate(
        [
            ("macro_f1", "macro-F1", "tab:blue"),
            ("balanced_accuracy", "balanced accuracy", "tab:green"),
            ("shuffle_macro_f1", "macro-F1, shuffled labels", "tab:gray"),
        ]
    ):
        vals = [0.0 if math.isnan(r[key]) else r[key] for r in rows]
        err = [0.0 if math.isnan(r["macro_f1_std"]) else r["macro_f1_std"] for r in rows]
        ax.bar(x + (k - 1) * 0.27, vals, 0.27, label=label, color=color,
               yerr=err if key == "macro_f1" else None, capsize=3)  # fmt: skip
    ax.axhline(chance, color="k", lw=0.8, ls="--", label=f"chance balanced accuracy ({chance:.2f})")
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1)
    ax.set_ylabel("test score (held-out animals)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("HOG vs learned models")
    return save_figure(fig, path)
