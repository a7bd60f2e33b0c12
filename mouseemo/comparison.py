"""Comparisons of models: the HOG-vs-learned benchmark, the baseline beside a training run, and the
entry point that chooses between them and a single run (:func:`run_task`).

(Speed benchmarks are scripts in the repository's ``benchmarks/`` folder; this module compares what
models predict.)

HOG versus learned models on the same held-out animals, with label-shuffle controls.

:func:`run_benchmark` (``python evaluate.py experiment=benchmark``) trains or fits every model named
in ``cfg.benchmark.models`` (options of the ``model`` config group) on the configured split, tests it
on the held-out animals, and repeats each with circularly shifted training labels as a control. Each
job is an ordinary :func:`mouseemo.tasks.train` run in a sub-folder of the run directory; the
summary goes to ``benchmark.csv``, ``benchmark.md`` and ``benchmark.png`` and is printed.

Conditions and spread:

* ``benchmark.label_sources`` (e.g. ``[truth, events]``) repeats everything once per label source and
  reports the conditions side by side (a ``labels`` column; jobs under ``labels_<source>/``). With
  ``events`` the labels are the stimulus windows of ``events.csv`` and frames outside every window
  are neutral (``benchmark.events_outside``), as a lab's real data has them. Within one label source
  every job must be tested on the same frames with the same labels (checked on ``splits.json`` and
  ``test_predictions.csv``; a mismatch is an error).
* ``benchmark.folds=all`` holds every animal out once (leave-one-animal-out) and reports each score,
  and each class's F1, as the mean ± sample sd over folds. A fold whose held-out animal lacks a class
  is named in a warning (``benchmark.missing_classes=error`` makes it an error); that class's F1 is
  averaged over the folds that hold it, and the table says over how many.
* Recipes are chosen on a development cohort (``experiment=benchmark_dev``) and reported on another
  seed (``experiment=benchmark_report``) that is never looked at while tuning.

:func:`run_baseline` fits one such model (by default the HOG prototypes) after a training run, on the
same split, and prints its test metrics beside the trained model's.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import logging
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf, open_dict

from mouseemo import tasks
from mouseemo.data.face_datamodule import ensure_dataset
from mouseemo.errors import ConfigError, DataError
from mouseemo.utils.configs import config_dir
from mouseemo.utils.io import atomic_path, write_json_atomic, write_text_atomic
from mouseemo.viz.plots import plt, save_figure

log = logging.getLogger(__name__)

#: Test metrics reported per model (and, prefixed ``shuffle_``, for its label-shuffle control).
SCORES = ("accuracy", "balanced_accuracy", "macro_f1")


def model_options() -> list[str]:
    """Names of the ``model`` config group's options (``conf/model/*.yaml``)."""

    return sorted(p.stem for p in (config_dir() / "model").glob("*.yaml"))


def model_config(name: str) -> DictConfig:
    """The ``model`` group option ``conf/model/<name>.yaml`` as Hydra composes it (unresolved)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    conf = config_dir()
    options = model_options()
    if name not in options:
        raise ConfigError(f"unknown model {name!r}: the model configs are {options}")
    if GlobalHydra.instance().is_initialized():
        composed = compose(config_name="train", overrides=[f"model={name}"])
    else:
        with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
            composed = compose(config_name="train", overrides=[f"model={name}"])
    # detached from the composed tree: its interpolations resolve against the run it is put into
    return OmegaConf.create(OmegaConf.to_container(composed.model, resolve=False))


def job_config(
    cfg: DictConfig,
    model_cfg: DictConfig,
    out_dir: str | Path,
    shuffle: bool,
    csv_only: bool = False,
    fold: int | None = None,
    label_source: str | None = None,
    outside: str | None = None,
) -> DictConfig:
    """``cfg`` with another model, run directory and label-shuffle setting: one benchmark job.

    ``label_source`` (and ``outside``, the label of frames in no event window) replace
    ``data.label_source`` (``data.outside``) when given.
    """
    sub = copy.deepcopy(cfg)
    with open_dict(sub):
        sub.model = model_cfg
        sub.paths.output_dir = str(out_dir)
        sub.data.shuffle_train_labels = bool(shuffle)
        if fold is not None:
            sub.data.split.fold = int(fold)
        if label_source is not None:
            sub.data.label_source = str(label_source)
        if outside is not None:
            sub.data.outside = str(outside)
        sub.baseline = None
        sub.benchmark = None
        sub.ckpt_path = None
        sub.train = True
        sub.test = True
        if csv_only and sub.get("logger"):
            sub.logger = {
                k: v for k, v in sub.logger.items() if str(v.get("_target_", "")).endswith("CSVLogger")
            }
    return sub


def _missing_classes(metrics: dict, classes: list[str]) -> list[str]:
    confmat = metrics.get("test/confusion_matrix")
    if confmat is None:
        return []
    support = np.asarray(confmat).sum(axis=1)
    return [c for c, n in zip(classes, support) if n == 0]


def _test_split(run_dir: Path) -> dict:
    path = run_dir / "splits.json"
    return json.loads(path.read_text()).get("test", {}) if path.is_file() else {}


def _test_labels(run_dir: Path) -> str | None:
    """Digest of the job's test frames and their labels (``test_predictions.csv``), or ``None``."""
    path = run_dir / "test_predictions.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as fh:
        rows = sorted((r["animal"], r["session"], int(r["frame"]), r["label"]) for r in csv.DictReader(fh))
    return hashlib.sha1(json.dumps(rows).encode()).hexdigest()


#: ``benchmark.label_sources`` entries: where training and test labels come from.
LABEL_SOURCES = ("truth", "events", "auto")


def _label_sources(cfg: DictConfig) -> list[str | None]:
    """The label-source conditions; ``[None]`` (the data config's own labels) when none is set."""
    sources = cfg.benchmark.get("label_sources")
    if sources is None:
        return [None]
    sources = [sources] if isinstance(sources, str) else list(sources)
    bad = [s for s in sources if s not in LABEL_SOURCES]
    if bad or not sources or len(set(sources)) != len(sources):
        raise ConfigError(
            f"benchmark.label_sources must list distinct entries of {list(LABEL_SOURCES)}; got {sources}"
        )
    return sources


def _check_fold_classes(job: dict, classes: list[str], policy: str) -> None:
    """A held-out animal without some class: an explicit warning (or error) naming fold and animal."""
    if not job["missing"] or job["shuffle"]:
        return
    where = f"fold {job['fold']}, " if job["fold"] is not None else ""
    labels = f" ({job['labels']} labels)" if job.get("labels") else ""
    msg = (
        f"{where}held-out animal(s) {' '.join(job['test_animals'])}{labels}: no test frames of "
        f"{job['missing']}; their F1 is undefined there and left out of the per-class means, and the "
        "macro-F1 of this fold averages over the classes that are present or predicted"
    )
    if policy == "error":
        raise DataError(msg + " (benchmark.missing_classes=error; set it to warn to report anyway)")
    warnings.warn(msg, UserWarning, stacklevel=3)


def _fold_list(cfg: DictConfig) -> list[int | None]:
    folds = cfg.benchmark.get("folds")
    if folds is None:
        return [None]
    if isinstance(folds, str):
        if folds != "all":
            raise ConfigError(f"benchmark.folds must be null, 'all' or a list of fold indices; got {folds!r}")

        sessions = ensure_dataset(cfg.data.root, cfg.data.get("synthesize"))
        return list(range(len({s.animal for s in sessions})))
    if isinstance(folds, int):
        return [int(folds)]
    return [int(f) for f in folds]


def run_benchmark(cfg: DictConfig) -> dict:
    """Train/fit and test every benchmark model (and its shuffle control) on the same split.

    Returns:
        ``{"benchmark/<model>/<metric>": value}`` for the mean over folds
        (``benchmark/<label source>/<model>/<metric>`` with several label sources).

    Raises:
        ConfigError: an unknown model name, an empty model list, an unknown label source, truth
            labels for sessions without them.
        DataError: the jobs of one label source did not test on the same frames and labels; a
            held-out animal without some class with ``benchmark.missing_classes=error``.
    """
    spec = cfg.benchmark
    models = list(spec.get("models") or [])
    if not models:
        raise ConfigError("benchmark.models is empty: list model configs, e.g. [hog_proto,hog_rf,cnn]")
    overrides = spec.get("model_overrides") or {}
    options = model_options()
    unknown = [k for k in overrides if k not in options]
    if unknown:
        raise ConfigError(f"benchmark.model_overrides names {unknown}, which are not model configs {options}")
    model_cfgs = {}
    for name in models:
        model_cfgs[name] = model_config(name)
        if name in overrides:
            model_cfgs[name] = OmegaConf.merge(model_cfgs[name], overrides[name])
    controls = [False, True] if spec.get("shuffle_control", True) else [False]
    classes = list(cfg.data.classes)
    out = Path(cfg.paths.output_dir)
    folds = _fold_list(cfg)
    sources = _label_sources(cfg)
    if "truth" in sources:
        no_truth = [
            s.name
            for s in ensure_dataset(cfg.data.root, cfg.data.get("synthesize"))
            if s.truth_frames is None
        ]
        if no_truth:
            raise ConfigError(
                f"benchmark.label_sources includes truth, but session(s) {no_truth[:3]} have no "
                "truth/frames.csv (real data has none): set benchmark.label_sources=[events]"
            )
    policy = str(spec.get("missing_classes") or "warn")
    if policy not in ("warn", "error"):
        raise ConfigError(f"benchmark.missing_classes must be 'warn' or 'error'; got {policy!r}")
    outside = spec.get("events_outside", "neutral")

    jobs: list[dict[str, Any]] = []
    for source in sources:
        source_dir = out / f"labels_{source}" if len(sources) > 1 else out
        for fold in folds:
            fold_dir = source_dir / f"fold_{fold}" if fold is not None else source_dir
            reference: tuple[str, dict, str | None] | None = None
            for name in models:
                for shuffle in controls:
                    run_dir = fold_dir / (f"{name}_shuffle" if shuffle else name)
                    log.info("benchmark: %s%s%s%s", name, " (shuffled labels)" if shuffle else "",
                             f", fold {fold}" if fold is not None else "",
                             f", {source} labels" if source else "")  # fmt: skip
                    sub = job_config(
                        cfg, model_cfgs[name], run_dir, shuffle, fold=fold, label_source=source,
                        outside=outside if source == "events" else None,
                    )  # fmt: skip
                    metrics = tasks.train(sub)
                    split, labels = _test_split(run_dir), _test_labels(run_dir)
                    if reference is None:
                        reference = (name, split, labels)
                    elif split != reference[1] or (
                        None not in (labels, reference[2]) and labels != reference[2]
                    ):
                        raise DataError(
                            f"benchmark jobs {reference[0]} and {name}{' (shuffled labels)' if shuffle else ''} "
                            "were tested on different frames or labels; they must share data.seed, "
                            "data.split and the label source"
                        )
                    job = {
                        "model": name,
                        "labels": source or "",
                        "shuffle": shuffle,
                        "fold": fold,
                        "metrics": metrics,
                        "test_animals": sorted({k.split("/")[0] for k in split}),
                        "missing": _missing_classes(metrics, classes),
                        "num_test_frames": int(np.asarray(metrics.get("test/confusion_matrix", [[0]])).sum()),
                    }
                    _check_fold_classes(job, classes, policy)
                    jobs.append(job)
    rows = [r for source in sources for r in summarize(
        [j for j in jobs if j["labels"] == (source or "")], models, classes, labels=source or ""
    )]  # fmt: skip
    if _is_rank_zero():
        write_outputs(out, rows, jobs, classes)
        print("\nHOG vs learned, tested on held-out animals (shuffle_*: trained on shifted labels):\n")
        print(markdown_table(rows))
        print("\nPer-class test F1" + (" (mean ± sd over folds)" if len(folds) > 1 else "") + ":\n")
        print(class_table(rows, classes))
        print(f"\nbenchmark written to {out / 'benchmark.csv'}")
    result = {}
    for r in rows:
        prefix = f"benchmark/{r['labels']}/{r['model']}" if len(sources) > 1 else f"benchmark/{r['model']}"
        result.update({f"{prefix}/{k}": r[k] for k in r if k.endswith(SCORES)})
    result["benchmark_csv"] = str(out / "benchmark.csv")
    return result


def _mean(values: list[float]) -> float:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(vals)) if vals else float("nan")


def _sd(values: list[float]) -> float:
    """Sample standard deviation (ddof 1) over folds; NaN with fewer than two values."""
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.std(vals, ddof=1)) if len(vals) > 1 else float("nan")


def summarize(jobs: list[dict], models: list[str], classes: list[str], labels: str = "") -> list[dict]:
    """One row per model: test scores as mean and sample sd over folds, its shuffle control's mean,
    per-class F1 (mean and sd over the folds whose test frames hold the class)."""
    rows = []
    for name in models:
        real = [j for j in jobs if j["model"] == name and not j["shuffle"]]
        ctrl = [j for j in jobs if j["model"] == name and j["shuffle"]]
        row: dict[str, Any] = {"labels": labels, "model": name}
        for key in SCORES:
            vals = [j["metrics"].get(f"test/{key}") for j in real]
            row[key] = _mean(vals)
            row[f"{key}_std"] = _sd(vals)
        for key in SCORES:
            row[f"shuffle_{key}"] = _mean([j["metrics"].get(f"test/{key}") for j in ctrl])
        row["num_folds"] = len(real)
        row["num_test_frames"] = sum(j["num_test_frames"] for j in real)
        row["test_animals"] = " ".join(sorted({a for j in real for a in j["test_animals"]}))
        absent = {c for j in real for c in j["missing"]}
        row["missing_test_classes"] = " ".join(c for c in classes if c in absent)
        row["wall_time_s"] = int(round(sum(j["metrics"].get("wall_time_s", 0.0) for j in real)))
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


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.3f}"
    return str(v)


def mean_sd(mean: float, sd: float) -> str:
    """``"0.812 ± 0.034"``; the mean alone when the sd is undefined; empty when the mean is."""
    if mean is None or math.isnan(mean):
        return ""
    return f"{mean:.3f}" if sd is None or math.isnan(sd) else f"{mean:.3f} ± {sd:.3f}"


def _cell(row: dict, col: str) -> str:
    if f"{col}_std" in row:
        return mean_sd(row[col], row[f"{col}_std"])
    return _fmt(row[col])


def markdown_table(rows: list[dict]) -> str:
    """Scores per model (and label source): mean ± sd over folds where there are several."""
    lead = ["labels"] if any(r.get("labels") for r in rows) else []
    cols = [*lead, "model", *SCORES, "shuffle_macro_f1", "num_folds", "num_test_frames", "wall_time_s"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(_cell(r, c) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


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


def write_outputs(out: Path, rows: list[dict], jobs: list[dict], classes: list[str]) -> None:
    """``benchmark.csv`` (one row per model and label source), ``benchmark_jobs.csv``, ``benchmark.md``,
    ``benchmark.png``."""
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "benchmark.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({k: _fmt(v) for k, v in r.items()} for r in rows)
    cols = ["labels", "model", "shuffle", "fold", *SCORES, "num_test_frames", "test_animals", "missing"]
    cols += [f"f1_{c}" for c in classes] + ["wall_time_s"]
    with atomic_path(out / "benchmark_jobs.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for j in jobs:
            m = j["metrics"]
            w.writerow(
                [j.get("labels", ""), j["model"], j["shuffle"], "" if j["fold"] is None else j["fold"]]
                + [_fmt(m.get(f"test/{k}", float("nan"))) for k in SCORES]
                + [j["num_test_frames"], " ".join(j["test_animals"]), " ".join(j["missing"])]
                + [
                    "" if c in j["missing"] else _fmt(float(m.get(f"test/f1_{c}", float("nan"))))
                    for c in classes
                ]
                + [m.get("wall_time_s", "")]
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
    text = (
        "# HOG vs learned expression classifiers\n\n"
        "Test scores on held-out animals; `shuffle_*` is the same model trained on circularly shifted "
        f"labels (a control that should stay near chance, balanced accuracy {chance:.3f}).{spread}{labels_note}\n\n"
        + markdown_table(rows)
        + "\n\n## Per-class test F1\n\n"
        + class_table(rows, classes)
        + "\n"
    )
    write_text_atomic(out / "benchmark.md", text)
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


def run_baseline(cfg: DictConfig, metrics: dict) -> dict | None:
    """Fit ``cfg.baseline`` (a model config name) on the same split and print it beside ``metrics``.

    Returns:
        The baseline's test metrics, or ``None`` when no baseline is configured or the trained model
        is the baseline itself.
    """
    name = cfg.get("baseline")
    if not name:
        return None
    base_cfg = model_config(str(name))
    if base_cfg.get("_target_") == cfg.model.get("_target_"):
        return None
    if "test/macro_f1" not in metrics:  # the trained model is no frame classifier (e.g. the joint encoder)
        log.warning("baseline=%s skipped: the trained model reports no test/macro_f1 to compare with", name)
        return None
    out = Path(cfg.paths.output_dir) / "baseline"
    sub = job_config(cfg, base_cfg, out, shuffle=bool(cfg.data.get("shuffle_train_labels")), csv_only=True)
    with open_dict(sub):
        sub.callbacks = {k: v for k, v in (sub.get("callbacks") or {}).items() if k != "model_summary"}
    base = tasks.train(sub)
    rows = [{"model": _model_name(cfg.model) + " (this run)"}, {"model": f"{name} (baseline)"}]
    for row, m in zip(rows, (metrics, base)):
        for key in SCORES:
            row[key] = float(m.get(f"test/{key}", float("nan")))
    cols = ["model", *SCORES]
    width = max(len(r["model"]) for r in rows)
    if not _is_rank_zero():
        return base
    print("\nsame split, held-out test frames:")
    print(f"{'':{width}}  " + "  ".join(f"{c:>17}" for c in SCORES))
    for r in rows:
        print(f"{r['model']:{width}}  " + "  ".join(f"{_fmt(r[c]):>17}" for c in cols[1:]))
    return base


def _is_rank_zero() -> bool:
    from pytorch_lightning.utilities import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def _model_name(model_cfg: DictConfig) -> str:
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        choice = HydraConfig.get().runtime.choices.get("model")
        if choice:
            return str(choice)
    net = model_cfg.get("net")
    if isinstance(net, DictConfig):
        target = str(net.get("arch") or net.get("_target_", "")).rsplit(".", 1)[-1]
        return target
    return str(model_cfg.get("_target_", "model")).rsplit(".", 1)[-1]


def run_task(task: str, cfg: DictConfig) -> dict:
    """What ``train.py`` / ``evaluate.py`` run: the benchmark when ``cfg.benchmark`` is set, else
    :func:`mouseemo.tasks.train` (then the baseline, ``cfg.baseline``, on the same split) or
    :func:`mouseemo.tasks.evaluate`.

    Raises:
        ConfigError: an unknown task.
    """
    if task not in ("train", "evaluate"):
        raise ConfigError(f"unknown task {task!r}: train or evaluate")
    if cfg.get("benchmark"):
        return run_benchmark(cfg)
    if task == "evaluate":
        return tasks.evaluate(cfg)
    metrics = tasks.train(cfg)
    if cfg.get("baseline") and cfg.get("test", True):
        base = run_baseline(cfg, metrics)
        if base is not None:
            metrics.update({f"baseline/test/{k}": base[f"test/{k}"] for k in SCORES if f"test/{k}" in base})
            if _is_rank_zero():
                write_json_atomic(Path(cfg.paths.output_dir) / "metrics.json", metrics)
    return metrics
