"""HOG versus learned models on the same held-out animals, with label-shuffle controls.

:func:`run_benchmark` (``python evaluate.py experiment=benchmark``, through
:func:`mouseemo.tasks.run_task`) trains or fits every model named in ``cfg.benchmark.models``
(options of the ``model`` config group) on the configured split, tests it on the held-out animals,
and repeats each with circularly shifted training labels as a control. Each job is one run of the
``train`` function it is given (:func:`mouseemo.tasks.train`) in a sub-folder of the run directory;
the summary goes to ``benchmark.csv``, ``benchmark.md`` and ``benchmark.png`` and is printed
(:mod:`mouseemo.experiments.report`).

(Speed benchmarks are scripts in the repository's ``benchmarks/`` folder; this module compares what
models predict.)

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

"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import logging
import shlex
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf, open_dict

from mouseemo.data.face_datamodule import ensure_dataset
from mouseemo.data.label_controls import CONTROLS
from mouseemo.data.trials import TRIALS_FILE
from mouseemo.errors import ConfigError, DataError
from mouseemo.experiments.collapse import collapse_of_file
from mouseemo.experiments.report import SCORES, class_table, summarize, track_tables, write_outputs
from mouseemo.experiments.window_score import window_metrics
from mouseemo.utils.configs import compose_model, model_options
from mouseemo.utils.machine import results_header

log = logging.getLogger(__name__)

#: One training run: a composed config in, its metrics out (:func:`mouseemo.tasks.train`).
TrainFn = Callable[[DictConfig], dict]


def job_config(
    cfg: DictConfig,
    model_cfg: DictConfig,
    out_dir: str | Path,
    shuffle: bool | str,
    csv_only: bool = False,
    fold: int | None = None,
    label_source: str | None = None,
    outside: str | None = None,
    draw: int = 0,
) -> DictConfig:
    """``cfg`` with another model, run directory and label control: one benchmark job.

    ``shuffle`` is ``data.shuffle_train_labels`` (``False``, ``True``/``"shift"`` or ``"permute"``) and
    ``draw`` its ``data.control_draw``. ``label_source`` (and ``outside``, the label of frames in no
    event window) replace ``data.label_source`` (``data.outside``) when given.
    """
    sub = copy.deepcopy(cfg)
    with open_dict(sub):
        sub.model = model_cfg
        sub.paths.output_dir = str(out_dir)
        sub.data.shuffle_train_labels = shuffle if isinstance(shuffle, str) else bool(shuffle)
        sub.data.control_draw = int(draw)
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
    folds = list(folds)
    if any(isinstance(f, str) for f in folds):  # animals by name: the fold that holds each out
        names = sorted({s.animal for s in ensure_dataset(cfg.data.root, cfg.data.get("synthesize"))})
        unknown = [f for f in folds if str(f) not in names]
        if unknown:
            raise ConfigError(
                f"benchmark.folds names animal(s) {unknown} that are not in {cfg.data.root} ({names})"
            )
        return [names.index(str(f)) for f in folds]
    return [int(f) for f in folds]


def _controls(spec: DictConfig) -> list[tuple[str, int]]:
    """The ``(control, draw)`` jobs run beside every model: ``benchmark.controls`` (``shift``,
    ``permute``; default ``[shift]`` when ``shuffle_control`` is true), the permutation in
    ``control_draws`` independent draws (the shift draws its offsets per session already)."""
    controls = spec.get("controls")
    if controls is None:
        controls = ["shift"] if spec.get("shuffle_control", True) else []
    controls = [controls] if isinstance(controls, str) else list(controls)
    if any(c not in CONTROLS for c in controls) or len(set(controls)) != len(controls):
        raise ConfigError(
            f"benchmark.controls must list distinct entries of {list(CONTROLS)}; got {controls}"
        )
    draws = spec.get("control_draws", 1)
    if not isinstance(draws, int) or draws < 1:
        raise ConfigError(f"benchmark.control_draws must be an integer >= 1; got {draws!r}")
    return [(c, k) for c in controls for k in range(draws if c == "permute" else 1)]


def _control_dir(name: str, control: str, draw: int) -> str:
    if control == "shift":
        return f"{name}_shuffle" + (str(draw) if draw else "")
    return f"{name}_{control}{draw}"


#: Models that read the stimulus onsets at test time (``reference=trial`` or a timing clock) cannot be
#: in the track named ``log_free``.
LOG_FREE = "log_free"


def _tracks(spec: DictConfig, models: list[str], model_cfgs: dict[str, DictConfig]) -> dict[str, str]:
    """Each model's track from ``benchmark.tracks`` (``{track: [models]}``), or ``{}`` when unset."""
    tracks = spec.get("tracks") or {}
    out: dict[str, str] = {}
    for track, names in tracks.items():
        for name in [names] if isinstance(names, str) else list(names):
            if name in out:
                raise ConfigError(f"benchmark.tracks puts {name} in two tracks ({out[name]}, {track})")
            out[name] = str(track)
    if not tracks:
        return {}
    missing = [m for m in models if m not in out]
    if missing:
        raise ConfigError(f"benchmark.tracks gives no track to {missing}; every model needs one")
    for name in models:
        m = model_cfgs[name]
        if out[name] != LOG_FREE:
            continue
        if m.get("reference") == "trial" or m.get("rule") == "timing":
            raise ConfigError(
                f"{name} reads the stimulus onsets at test time (reference=trial or a timing rule): it "
                f"cannot be in the {LOG_FREE} track"
            )
        if m.get("neutral") in ("own", "subtract") and m.get("neutral_source", "baseline") == "baseline":
            raise ConfigError(
                f"{name} takes each session's neutral from its pre-stimulus frames (the stimulus log): in "
                f"the {LOG_FREE} track give it model.neutral_source=reference (benchmark.model_overrides)"
            )
    return {m: out[m] for m in models}


def _fragment(cfg: DictConfig) -> tuple[Path | None, str]:
    """Where ``benchmark.markdown`` asks for a results fragment (relative to where the run was
    started), and the fragment's header: the command as typed, the seed, the machine, the date."""
    path = cfg.benchmark.get("markdown")
    if not path:
        return None, ""
    from hydra.core.hydra_config import HydraConfig

    command = "python evaluate.py"
    if HydraConfig.initialized():
        hc = HydraConfig.get()
        entry = hc.job.config_name  # train | evaluate
        started = ["python", f"{entry}.py"] if sys.argv[0].endswith(".py") else ["mouseemo", entry]
        command = shlex.join([*started, *hc.overrides.task])
    synthesize = OmegaConf.select(cfg, "data.synthesize") or {}
    seed = synthesize.get("seed", cfg.get("seed")) if synthesize else cfg.get("seed")
    return Path(to_absolute_path(str(path))), results_header(command, seed)


def run_benchmark(cfg: DictConfig, train: TrainFn) -> dict:
    """Train/fit and test every benchmark model (and its shuffle control) on the same split, each
    job a call of ``train`` (:func:`mouseemo.tasks.train`).

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
        model_cfgs[name] = compose_model(name)
        if name in overrides:
            model_cfgs[name] = OmegaConf.merge(model_cfgs[name], overrides[name])
    controls: list[tuple[str, int]] = [("", 0), *_controls(spec)]
    tracks = _tracks(spec, models, model_cfgs)
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

    sessions = ensure_dataset(cfg.data.root, cfg.data.get("synthesize"))
    no_trials = [f"{s.animal}/{s.session}" for s in sessions if not (s.path / TRIALS_FILE).is_file()]
    if any(c == "permute" for c, _ in controls) and no_trials:  # before any job runs
        raise ConfigError(
            f"benchmark.controls includes permute, which swaps labels between trials, but session(s) "
            f"{no_trials[:3]} have no {TRIALS_FILE}: drop permute or give every session its trials"
        )
    jobs: list[dict[str, Any]] = []
    for source in sources:
        source_dir = out / f"labels_{source}" if len(sources) > 1 else out
        for fold in folds:
            fold_dir = source_dir / f"fold_{fold}" if fold is not None else source_dir
            reference: tuple[str, dict, str | None] | None = None
            for name in models:
                for control, draw in controls:
                    shuffle = bool(control)
                    run_dir = fold_dir / (_control_dir(name, control, draw) if control else name)
                    log.info("benchmark: %s%s%s%s", name, f" ({control} control {draw})" if control else "",
                             f", fold {fold}" if fold is not None else "",
                             f", {source} labels" if source else "")  # fmt: skip
                    sub = job_config(
                        cfg, model_cfgs[name], run_dir, "permute" if control == "permute" else shuffle, fold=fold, label_source=source,
                        outside=outside if source == "events" else None, draw=draw,
                    )  # fmt: skip
                    metrics = train(sub)
                    metrics = {
                        **metrics,
                        **window_metrics(run_dir / "test_predictions.csv", sessions, classes),
                    }
                    split, labels = _test_split(run_dir), _test_labels(run_dir)
                    if reference is None:
                        reference = (name, split, labels)
                    elif split != reference[1] or (
                        None not in (labels, reference[2]) and labels != reference[2]
                    ):
                        raise DataError(
                            f"benchmark jobs {reference[0]} and {name}{f' ({control} control)' if shuffle else ''} "
                            "were tested on different frames or labels; they must share data.seed, "
                            "data.split and the label source"
                        )
                    job = {
                        "model": name,
                        "labels": source or "",
                        "shuffle": shuffle,
                        "control": control,
                        "draw": draw,
                        "track": tracks.get(name, ""),
                        "fold": fold,
                        "metrics": metrics,
                        "test_animals": sorted({k.split("/")[0] for k in split}),
                        "missing": _missing_classes(metrics, classes),
                        "collapse": collapse_of_file(run_dir / "test_predictions.csv"),
                        "num_test_frames": int(np.asarray(metrics.get("test/confusion_matrix", [[0]])).sum()),
                    }
                    _check_fold_classes(job, classes, policy)
                    jobs.append(job)
    rows = [r for source in sources for r in summarize(
        [j for j in jobs if j["labels"] == (source or "")], models, classes, labels=source or ""
    )]  # fmt: skip
    if is_rank_zero():
        write_outputs(out, rows, jobs, classes, *_fragment(cfg))
        print(
            "\nTested on held-out animals (shuffle_*: trained on shifted labels; permute_*: on permuted trials):\n"
        )
        print(track_tables(rows))
        print("\nPer-class test F1" + (" (mean ± sd over folds)" if len(folds) > 1 else "") + ":\n")
        print(class_table(rows, classes))
        print(f"\nbenchmark written to {out / 'benchmark.csv'}")
    result = {}
    for r in rows:
        prefix = f"benchmark/{r['labels']}/{r['model']}" if len(sources) > 1 else f"benchmark/{r['model']}"
        result.update({f"{prefix}/{k}": r[k] for k in r if k.endswith(SCORES)})
    result["benchmark_csv"] = str(out / "benchmark.csv")
    return result


def is_rank_zero() -> bool:
    """Whether this process writes and prints (the first one under DDP)."""
    from pytorch_lightning.utilities import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0
