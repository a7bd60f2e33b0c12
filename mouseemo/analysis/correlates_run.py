"""One session's correlates analysis, end to end: the session's neural activity, the face traces
moved onto the imaging clock and correlated with every neuron (:mod:`mouseemo.analysis.correlates`),
the comparison with ``truth/neurons.csv`` on synthetic sessions, and the output files.

Written to the output folder: ``neurons.csv`` (one row per neuron: ``neuron, preferred, r, lag_s, p,
q, significant, r_<emotion>..., p_<emotion>..., q_<emotion>...``), ``summary.json`` (fraction of
neurons per emotion, settings, clock alignment, truth comparison), ``traces.npz`` (the face traces on
the imaging clock), ``responses.png`` and ``examples.png``. All files are written to temporary names
and renamed at the end, ``summary.json`` last.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mouseemo import __version__
from mouseemo.analysis.correlates import CorrelatesResult, correlate_neurons, traces_on_imaging_clock
from mouseemo.analysis.correlates_truth import compare_with_truth, read_truth_neurons
from mouseemo.data.events import read_events
from mouseemo.data.imaging import DFF_WINDOW_S, SIGNALS, ActivityTraces, load_suite2p, require_neurons
from mouseemo.data.sync import detect_frame_problems, read_timestamps
from mouseemo.errors import ConfigError, DataError
from mouseemo.inference.traces import FaceTraces, face_traces
from mouseemo.utils.io import atomic_path, dumps_json, read_user_json, remove_stale_temps
from mouseemo.viz.correlates import plot_examples, plot_responses

OUTPUTS = ("neurons.csv", "traces.npz", "responses.png", "examples.png", "summary.json")


def session_activity(
    folder: str | Path,
    signal: str = "dff",
    fs: float | None = None,
    dff_window_s: float = DFF_WINDOW_S,
    all_rois: bool = False,
) -> ActivityTraces:
    """Activity of a session's Suite2p plane, with frame times (``imaging_timestamps.csv``, else
    ``frame / fs``).

    The frame rate is ``fs``, else ``session.json``'s ``imaging_fs``, else the one the timestamps
    imply, else Suite2p's ``ops['fs']``.

    Raises:
        DataError: no Suite2p output, no ROI labelled a cell, timestamps that do not match the frames.
    """
    folder = Path(folder)
    if signal not in SIGNALS:
        raise ConfigError(f"`signal` must be one of {list(SIGNALS)}; got {signal!r}")
    ts_path = folder / "imaging_timestamps.csv" if folder.is_dir() else None
    t = read_timestamps(ts_path) if ts_path is not None and ts_path.is_file() else None
    if fs is None:
        meta = folder / "session.json"
        if meta.is_file():
            info = read_user_json(meta)
            fs = info.get("imaging_fs") if isinstance(info, dict) else None
    if fs is None and t is not None and len(t) > 1:
        fs = float(1.0 / np.median(np.diff(t)))
    rec = load_suite2p(folder, only_cells=not all_rois, fs=fs)
    require_neurons(rec, not all_rois, hint="; set `all_rois` to use every ROI")
    kw = {"window_s": dff_window_s} if signal == "dff" else {}
    act = rec.to_activity(signal, **kw)
    if t is not None:
        if len(t) != act.num_frames:
            raise DataError(f"{ts_path}: {len(t)} timestamps but Suite2p has {act.num_frames} frames")
        act.t = t
    else:
        act.t = act.times()
    return act


#: Default lag of fluorescence (dF/F, F, corrected) behind the face: calcium indicators report spikes
#: with a delay (GCaMP6: peak cross-correlation with a behaviour about 0.3-1 s after it).
DEFAULT_LAG_S = 0.5


def default_lags(signal: str) -> np.ndarray:
    """:data:`DEFAULT_LAG_S` for fluorescence, 0 for deconvolved activity (``spks``)."""
    return np.zeros(1) if signal == "spks" else np.array([DEFAULT_LAG_S])


def parse_lags(text: str | None) -> np.ndarray:
    """``"L"`` or ``"MIN,MAX,STEP"`` (seconds) -> lags; None -> no lag."""
    if text is None:
        return np.zeros(1)
    try:
        parts = [float(v) for v in str(text).split(",")]
    except ValueError:
        raise ConfigError(f"`lag_sweep` must be L or MIN,MAX,STEP in seconds; got {text!r}") from None
    if len(parts) == 1:
        return np.array(parts)
    if len(parts) != 3 or parts[2] <= 0 or parts[1] < parts[0]:
        raise ConfigError(f"`lag_sweep` must be MIN,MAX,STEP with MIN <= MAX and STEP > 0; got {text!r}")
    lo, hi, step = parts
    return np.arange(lo, hi + step / 2, step)


def parse_shifts(text: str | int | None) -> int | None:
    """``"all"`` -> None (every shift); else a positive integer."""
    if text is None or str(text).lower() == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"`shifts` must be 'all' or a positive integer; got {text!r}") from None
    if value < 1:
        raise ConfigError(f"`shifts` must be >= 1; got {value}")
    return value


@dataclass
class CorrelatesRun:
    """Everything one analysis produced (also returned to Python callers)."""

    result: CorrelatesResult
    t_img: np.ndarray  # (T,) imaging frame times used
    activity: np.ndarray  # (N, T) on those frames
    traces: np.ndarray  # (K, T)
    summary: dict
    windows: list = field(default_factory=list)


def analyse_session(
    folder: str | Path,
    face: FaceTraces,
    signal: str = "dff",
    imaging_fs: float | None = None,
    dff_window_s: float = DFF_WINDOW_S,
    all_rois: bool = False,
    include_neutral: bool = False,
    lags_s=None,
    num_shifts: int | None = None,
    min_shift_s: float = 0.0,
    alpha: float = 0.05,
    tail: str = "greater",
    min_overlap_s: float = 10.0,
    seed: int = 0,
    test: str = "pairs",
) -> CorrelatesRun:
    """Correlate the session's neurons with ``face`` traces (see :mod:`mouseemo.analysis.correlates`)."""
    folder = Path(folder)
    act = session_activity(folder, signal=signal, fs=imaging_fs, dff_window_s=dff_window_s, all_rois=all_rois)
    face = face.select(include_neutral)
    lags_s = default_lags(signal) if lags_s is None else lags_s
    try:
        traces, align = traces_on_imaging_clock(face.scores, face.t, act.t, min_overlap_s=min_overlap_s)
    except DataError as err:
        raise DataError(f"{folder}: {err}") from None
    t_img = act.t[align.neural_idx]
    activity = act.traces[:, align.neural_idx]
    fs = float(1.0 / np.median(np.diff(t_img)))
    result = correlate_neurons(
        activity, traces, fs, names=face.names, neuron_ids=act.neuron_ids, lags_s=lags_s,
        num_shifts=num_shifts, min_shift_s=min_shift_s, alpha=alpha, tail=tail, seed=seed, test=test,
    )  # fmt: skip
    summary = {
        "session": str(folder),
        "version": __version__,
        "face": {"kind": face.kind, "names": face.names, **face.info},
        "signal": signal,
        "dff_window_s": dff_window_s if signal == "dff" else None,
        "imaging_fs": fs,
        "num_neurons": result.num_neurons,
        "num_significant": int(result.significant.sum()),
        "fraction_per_emotion": result.fractions(),
        "count_per_emotion": result.counts(),
        "test": test,
        "alpha": alpha,
        "tail": tail,
        "num_shifts": len(result.shifts_s),
        "min_shift_s": min_shift_s,
        "lags_s": [float(v) for v in result.lags_s],
        "alignment": align.to_dict(),
    }
    if len(face.t) > 1:
        summary["camera_frames"] = {
            k: v for k, v in detect_frame_problems(face.t).to_dict().items() if not k.endswith("_at")
        }
    truth_path = folder / "truth" / "neurons.csv"
    if truth_path.is_file():
        summary["truth"] = compare_with_truth(result, read_truth_neurons(truth_path))
    windows = []
    events_path = folder / "events.csv"
    if events_path.is_file():
        ev = read_events(events_path)
        windows = [(o, e, lab) for o, e, lab in zip(ev.onset, ev.end, ev.label) if lab != "neutral"]
    return CorrelatesRun(result, t_img, activity, traces, summary, windows)


def write_outputs(run: CorrelatesRun, out_dir: Path, plot: bool = True) -> dict[str, Path]:
    """Write the run's files into ``out_dir`` (atomically, ``summary.json`` last, listing them under
    ``outputs``)."""
    paths = {name: out_dir / name for name in OUTPUTS if plot or not name.endswith(".png")}
    run.summary["outputs"] = list(paths)
    res = run.result
    with ExitStack() as stack:
        tmp = {n: stack.enter_context(atomic_path(p)) for n, p in reversed(list(paths.items()))}
        header, rows = res.rows()
        with open(tmp["neurons.csv"], "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows(rows)
        with open(tmp["traces.npz"], "wb") as fh:
            np.savez(fh, t=run.t_img, traces=run.traces.astype(np.float32), names=np.array(res.names))
        if plot:
            plot_responses(run.t_img, run.activity, run.traces, res.names, res.preferred, res.r_best,
                           tmp["responses.png"], windows=run.windows)  # fmt: skip
            plot_examples(run.t_img, run.activity, run.traces, res.names, res.preferred, res.r_best,
                          res.neuron_ids, tmp["examples.png"], windows=run.windows)  # fmt: skip
        tmp["summary.json"].write_text(dumps_json(run.summary), encoding="utf-8")
    return paths


def correlates_to_folder(
    folder: str | Path,
    face: FaceTraces | Mapping[str, Any],
    out_dir: str | Path,
    overwrite: bool = False,
    plot: bool = True,
    **analysis,
) -> CorrelatesRun:
    """:func:`analyse_session` of ``folder`` with ``face``, written to ``out_dir`` (:func:`write_outputs`).

    ``face`` is the traces, or the keyword arguments of :func:`mouseemo.inference.traces.face_traces`
    to compute them with (after the output folder is checked, so that a refusal comes first).

    Raises:
        ConfigError: ``out_dir`` already holds outputs and ``overwrite`` is false.
    """
    out_dir = Path(out_dir)
    if out_dir.is_dir():
        remove_stale_temps(out_dir)  # left by a run that was killed
    for name in OUTPUTS:
        if (out_dir / name).is_dir():
            raise ConfigError(f"{out_dir / name} is a folder; mouseemo writes its {name} there")
    existing = [n for n in OUTPUTS if (out_dir / n).exists() or (out_dir / n).is_symlink()]
    if existing and not overwrite:
        raise ConfigError(f"{out_dir} already holds {existing[0]}; set `overwrite` to replace the outputs")
    if not isinstance(face, FaceTraces):
        face = face_traces(folder, **face)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="dff: baseline F0 fell below")
        run = analyse_session(folder, face, **analysis)
    earlier = _listed_outputs(out_dir / "summary.json")
    written = write_outputs(run, out_dir, plot=plot)
    for name in earlier - set(written):  # an earlier run's files that this one does not write
        old = out_dir / name
        if old.is_file() and not old.is_symlink():
            old.unlink()
    return run


def _listed_outputs(summary: Path) -> set[str]:
    """The output names a ``summary.json`` mouseemo wrote lists (none for any other file)."""
    try:
        record = read_user_json(summary) if summary.is_file() else None
    except DataError:
        return set()
    if not isinstance(record, dict) or "version" not in record or not isinstance(record.get("outputs"), list):
        return set()
    return {str(n) for n in record["outputs"]} & set(OUTPUTS)


def report(run: CorrelatesRun, out_dir: str | Path) -> str:
    """The lines ``mouseemo correlates`` prints: significant neurons per emotion, the truth
    comparison (synthetic sessions), the files written."""
    s = run.summary
    frac = ", ".join(f"{k} {v:.0%}" for k, v in s["fraction_per_emotion"].items() if v > 0)
    lines = [
        f"{s['session']}: {s['num_significant']} of {s['num_neurons']} neurons significant "
        f"(q < {s['alpha']}): {frac}"
    ]
    if "truth" in s:
        tr = s["truth"]
        lines.append(
            f"vs truth/neurons.csv: precision {tr['precision']:.2f}, recall {tr['recall']:.2f}, "
            f"preferred-emotion agreement {tr['agreement']:.2f}"
        )
    lines.append(f"wrote {Path(out_dir) / 'neurons.csv'} and {Path(out_dir) / 'summary.json'}")
    return "\n".join(lines)


__all__ = [
    "DEFAULT_LAG_S",
    "OUTPUTS",
    "CorrelatesRun",
    "analyse_session",
    "correlates_to_folder",
    "default_lags",
    "parse_lags",
    "parse_shifts",
    "report",
    "session_activity",
    "write_outputs",
]
