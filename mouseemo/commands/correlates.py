"""``mouseemo correlates``: which neurons of a session go with which facial expression.

Example::

    mouseemo correlates data/m01/s01 --out correlates/            # the session's own prototypes
    mouseemo correlates data/m01/s01 --out c/ --prototypes protos.npz --trace similarity
    mouseemo correlates data/m01/s01 --out c/ --ckpt logs/train/runs/<time>/checkpoints/epoch_009.ckpt
    mouseemo correlates suite2p_session/ --out c/ --traces behaviour.csv --imaging-fs 30

The face side gives one trace per emotion on the camera clock:

* no model: prototypes are built from the session's own ``events.csv`` (the paper's way), then every
  frame's HOG is scored against them: ``--trace intensity`` (default) unmixes each frame into the
  prototypical expressions (:func:`mouseemo.ops.similarity.expression_intensity`), ``--trace
  similarity`` is the paper's Pearson similarity to each prototype;
* ``--prototypes P.npz``: the same with prototypes from ``mouseemo prototypes``;
* ``--ckpt C.ckpt``: a trained model's per-frame scores (class probabilities, or similarities);
* ``--traces T.csv``: any traces with a ``time_s`` column (e.g. ``mouseemo predict`` output), on the
  clock of ``imaging_timestamps.csv`` (or of the imaging frames, ``frame / fs``, when there is none).

The traces are moved onto the imaging clock and correlated with every neuron
(:mod:`mouseemo.analysis.correlates`). Written to ``--out``: ``neurons.csv`` (one row per neuron:
``neuron, preferred, r, lag_s, p, q, significant, r_<emotion>..., p_<emotion>...``), ``summary.json``
(fraction of neurons per emotion, settings, clock alignment, and the comparison with
``truth/neurons.csv`` on synthetic sessions), ``traces.npz`` (the face traces on the imaging clock),
``responses.png`` and ``examples.png``. All files are written to temporary names and renamed at the
end, ``summary.json`` last.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import warnings
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mouseemo import __version__
from mouseemo.analysis.correlates import (
    TAILS,
    CorrelatesResult,
    compare_with_truth,
    correlate_neurons,
    read_truth_neurons,
    traces_on_imaging_clock,
)
from mouseemo.commands._args import check_out_dir, finite_float
from mouseemo.commands.prototypes import (
    VideoInput,
    build_from_videos,
    frame_times,
    hog_input_size,
    iter_hog,
    pick_device,
)
from mouseemo.data.events import read_events
from mouseemo.data.imaging import SIGNALS, ActivityTraces, load_suite2p
from mouseemo.data.session import Session
from mouseemo.data.sync import detect_frame_problems, read_timestamps
from mouseemo.data.video import VideoReader, parse_crop
from mouseemo.errors import ConfigError, DataError
from mouseemo.models.prototypes_io import Prototypes
from mouseemo.ops.similarity import expression_intensity, pearson_similarity
from mouseemo.utils.io import atomic_path, dumps_json, read_user_json, read_user_text, remove_stale_temps

log = logging.getLogger(__name__)

TRACE_KINDS = ("intensity", "similarity")
OUTPUTS = ("neurons.csv", "traces.npz", "responses.png", "examples.png", "summary.json")


# --------------------------------------------------------------------------------------------------
# The face side
# --------------------------------------------------------------------------------------------------


@dataclass
class FaceTraces:
    """Per-frame face traces on the camera clock.

    Attributes:
        t: ``(T,)`` frame times (camera-clock seconds).
        scores: ``(T, K)`` one column per name.
        names: trace names (emotions).
        kind: ``intensity``, ``similarity``, ``prob`` or ``csv``.
        info: provenance written to ``summary.json``.
    """

    t: np.ndarray
    scores: np.ndarray
    names: list[str]
    kind: str
    info: dict = field(default_factory=dict)

    def select(self, include_neutral: bool) -> FaceTraces:
        keep = [j for j, n in enumerate(self.names) if include_neutral or n != "neutral"]
        if not keep:
            raise DataError(f"no emotion traces to correlate (only {self.names})")
        return FaceTraces(self.t, self.scores[:, keep], [self.names[j] for j in keep], self.kind, self.info)


def session_prototypes(
    session: Session,
    crop=None,
    hog: dict | None = None,
    k: int = 10,
    mode: str = "least-neutral",
    device: torch.device | str = "cpu",
    batch_size: int = 256,
) -> Prototypes:
    """The session's own prototypes from its ``events.csv`` (neutral from the baseline)."""
    if session.events_path is None:
        raise DataError(
            f"{session.path}: no events.csv to build prototypes from; pass --prototypes or --ckpt"
        )
    item = VideoInput(session.video, session.events_path, f"{session.animal}_{session.session}")
    return build_from_videos([item], crop=crop, hog=hog, mode=mode, k=k, device=device, chunk_size=batch_size)


def traces_from_prototypes(
    session: Session,
    protos: Prototypes,
    trace: str = "intensity",
    crop=None,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
) -> FaceTraces:
    """Score every frame of the session's video against ``protos``.

    ``trace="intensity"`` unmixes each frame into the non-neutral prototypes (needs a ``neutral``
    prototype); ``"similarity"`` is the Pearson similarity to every prototype.
    """
    if trace not in TRACE_KINDS:
        raise ConfigError(f"--trace must be one of {list(TRACE_KINDS)}; got {trace!r}")
    if trace == "intensity" and "neutral" not in protos.names:
        raise ConfigError("--trace intensity needs a 'neutral' prototype; use --trace similarity")
    device = torch.device(device)
    crop = crop if crop is not None else protos.crop
    matrix = torch.as_tensor(protos.matrix, device=device)
    neutral = protos.names.index("neutral") if "neutral" in protos.names else 0
    out, times = [], []
    with VideoReader(session.video, crop=crop) as vr:
        size = hog_input_size(vr, protos.resize)
        protos.check_compatible(protos.hog, size, source=f"{session.video} with crop {crop}")
        for start, frames, feats in iter_hog(vr, protos.hog, protos.resize, device, batch_size):
            if trace == "similarity":
                scores = pearson_similarity(feats, matrix)
            else:
                scores = expression_intensity(feats, matrix, neutral_index=neutral)
            out.append(scores.double().cpu().numpy())
            times.append(frame_times(vr, start, len(frames)))
    if not out:
        raise DataError(f"no frames decoded from {session.video}")
    names = list(protos.names) if trace == "similarity" else [n for n in protos.names if n != "neutral"]
    return FaceTraces(
        np.concatenate(times), np.concatenate(out), names, trace,
        {"crop": list(crop) if crop else None, "hog": protos.hog, "prototypes": list(protos.names)},
    )  # fmt: skip


def traces_from_checkpoint(
    session: Session,
    ckpt: str | Path,
    crop=None,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
) -> FaceTraces:
    """A trained model's per-frame scores, computed as ``mouseemo predict`` does
    (:class:`~mouseemo.inference.scorers.CheckpointScorer`): frames cropped and resized as in
    training, the session reference for models that use one, clips for temporal models, then the
    module's own scores (class probabilities or similarities)."""
    from mouseemo.inference.scorers import CheckpointScorer
    from mouseemo.models.checkpoint import load_model

    device = torch.device(device)
    loaded = load_model(ckpt, device=device)
    if getattr(loaded.module, "is_joint_encoder", False) or not loaded.score_names:
        raise ConfigError(
            f"{ckpt} is not an expression model (no per-class scores); correlates needs a classifier or "
            "prototype checkpoint (a joint encoder is exported with `mouseemo embed`)"
        )
    scorer = CheckpointScorer(loaded, device)
    crop = crop if crop is not None else loaded.crop
    if crop is None and session.meta.get("crop"):
        crop = parse_crop(session.meta["crop"])
    out, times = [], []
    with VideoReader(session.video, crop=crop) as vr:
        scorer.check(vr.height, vr.width, source=f"{session.video} (crop {list(crop) if crop else None})")
        scorer.begin_video(vr)
        score = scorer.stream()
        for start, frames in vr.iter_chunks(batch_size):
            x = torch.from_numpy(scorer.prepare(frames)).to(device)
            out.append(score(x).double().cpu().numpy())
            times.append(frame_times(vr, start, len(frames)))
    if not out:
        raise DataError(f"no frames decoded from {session.video}")
    scores = np.concatenate(out)
    if scores.shape[1] != len(loaded.score_names):
        raise DataError(
            f"{ckpt}: the model gives {scores.shape[1]} scores for {len(loaded.score_names)} names"
        )
    return FaceTraces(
        np.concatenate(times), scores, list(loaded.score_names), loaded.score_prefix,
        {"ckpt": str(ckpt), "crop": list(crop) if crop else None,
         "image_size": list(loaded.image_size) if loaded.image_size else None},
    )  # fmt: skip


def traces_from_csv(path: str | Path) -> FaceTraces:
    """Traces from a CSV with a ``time_s`` column and numeric columns (``similarity_``/``prob_``
    prefixes are dropped; ``frame`` and ``label`` columns are ignored)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"traces file not found: {path}")
    try:
        reader = csv.reader(io.StringIO(read_user_text(path), newline=""))
        header = next(reader, None)
        rows = [r for r in reader if r and any(c.strip() for c in r)]
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV ({exc})") from None
    if not header or "time_s" not in header:
        raise DataError(f"{path}: needs a header with a time_s column and one column per trace")
    cols = [j for j, h in enumerate(header) if h not in ("time_s", "frame", "label")]
    if not cols:
        raise DataError(f"{path}: no trace columns besides time_s")
    ti = header.index("time_s")
    try:
        t = np.array([float(r[ti]) for r in rows])
        scores = np.array([[float(r[j]) for j in cols] for r in rows], dtype=np.float64)
    except (ValueError, IndexError) as err:
        raise DataError(f"{path}: a value is missing or not a number ({err})") from None
    if len(t) < 2:
        raise DataError(f"{path}: fewer than 2 rows")
    if not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
        raise DataError(f"{path}: time_s must be finite and strictly increasing")
    bad = ~np.isfinite(scores)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        raise DataError(f"{path}: NaN or inf in column {header[cols[j]]!r} at line {i + 2}")
    names = [header[j].removeprefix("similarity_").removeprefix("prob_") for j in cols]
    return FaceTraces(t, scores, names, "csv", {"traces": str(path)})


# --------------------------------------------------------------------------------------------------
# The neural side
# --------------------------------------------------------------------------------------------------


def session_activity(
    folder: str | Path,
    signal: str = "dff",
    fs: float | None = None,
    dff_window_s: float = 600.0,
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
        raise ConfigError(f"--signal must be one of {list(SIGNALS)}; got {signal!r}")
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
    if rec.num_neurons == 0:
        raise DataError(
            f"{rec.folder}: no ROI is labelled a cell in iscell.npy; pass --all-rois to use every ROI"
        )
    kw = {"window_s": dff_window_s} if signal == "dff" else {}
    act = rec.to_activity(signal, **kw)
    if t is not None:
        if len(t) != act.num_frames:
            raise DataError(f"{ts_path}: {len(t)} timestamps but Suite2p has {act.num_frames} frames")
        act.t = t
    else:
        act.t = act.times()
    return act


# --------------------------------------------------------------------------------------------------
# The whole analysis
# --------------------------------------------------------------------------------------------------


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
        raise ConfigError(f"--lag-sweep must be L or MIN,MAX,STEP in seconds; got {text!r}") from None
    if len(parts) == 1:
        return np.array(parts)
    if len(parts) != 3 or parts[2] <= 0 or parts[1] < parts[0]:
        raise ConfigError(f"--lag-sweep must be MIN,MAX,STEP with MIN <= MAX and STEP > 0; got {text!r}")
    lo, hi, step = parts
    return np.arange(lo, hi + step / 2, step)


def parse_shifts(text: str | int | None) -> int | None:
    """``"all"`` -> None (every shift); else a positive integer."""
    if text is None or str(text).lower() == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"--shifts must be 'all' or a positive integer; got {text!r}") from None
    if value < 1:
        raise ConfigError(f"--shifts must be >= 1; got {value}")
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
    dff_window_s: float = 600.0,
    all_rois: bool = False,
    include_neutral: bool = False,
    lags_s=None,
    num_shifts: int | None = None,
    min_shift_s: float = 0.0,
    alpha: float = 0.05,
    tail: str = "greater",
    min_overlap_s: float = 10.0,
    seed: int = 0,
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
        num_shifts=num_shifts, min_shift_s=min_shift_s, alpha=alpha, tail=tail, seed=seed,
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
    """Write the run's files into ``out_dir`` (atomically, ``summary.json`` last)."""
    paths = {name: out_dir / name for name in OUTPUTS if plot or not name.endswith(".png")}
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
            from mouseemo.viz.correlates import plot_examples, plot_responses

            plot_responses(run.t_img, run.activity, run.traces, res.names, res.preferred, res.r_best,
                           tmp["responses.png"], windows=run.windows)  # fmt: skip
            plot_examples(run.t_img, run.activity, run.traces, res.names, res.preferred, res.r_best,
                          res.neuron_ids, tmp["examples.png"], windows=run.windows)  # fmt: skip
        tmp["summary.json"].write_text(dumps_json(run.summary), encoding="utf-8")
    return paths


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "correlates",
        help="neurons vs facial expressions: correlation, circular-shift null, FDR, preferred emotion",
        description="Correlate every neuron of a session (Suite2p) with each emotion's face trace on the "
        "imaging clock; circular-shift null and Benjamini-Hochberg FDR; each neuron's preferred emotion.",
    )
    p.add_argument("session", metavar="SESSION", help="session folder (face video, events.csv, suite2p/)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--prototypes", metavar="P.npz", help="prototypes from `mouseemo prototypes`")
    src.add_argument("--ckpt", metavar="C.ckpt", help="a trained classifier or prototype checkpoint")
    src.add_argument("--traces", metavar="T.csv", help="face traces with a time_s column (no video needed)")
    p.add_argument("--trace", choices=TRACE_KINDS, default="intensity",
                   help="prototypes: unmixed expression intensity (default) or the paper's Pearson similarity")  # fmt: skip
    p.add_argument("--include-neutral", action="store_true", help="also test the neutral trace")
    p.add_argument("--signal", choices=SIGNALS, default="dff", help="neural signal (default dF/F)")
    p.add_argument("--dff-window", type=finite_float, default=600.0, metavar="S",
                   help="dF/F baseline window in seconds: longer than the slowest state (LiCl malaise lasts minutes)")  # fmt: skip
    p.add_argument("--imaging-fs", type=finite_float, default=None, metavar="HZ",
                   help="imaging frame rate (default: session.json, the timestamps, or ops.npy)")  # fmt: skip
    p.add_argument("--all-rois", action="store_true", help="use every ROI, not only those labelled cells")
    p.add_argument("--lag-sweep", default=None, metavar="L|MIN,MAX,STEP",
                   help="lag(s) in seconds of neural activity after the face; the best one counts "
                   f"(default {DEFAULT_LAG_S} s, GCaMP's delay, for fluorescence; 0 for spks)")  # fmt: skip
    p.add_argument("--shifts", default="all", metavar="N|all",
                   help="circular shifts in the null: all (default, exact) or N drawn at random (>= 1000)")  # fmt: skip
    p.add_argument(
        "--min-shift",
        type=finite_float,
        default=0.0,
        metavar="S",
        help="shortest circular shift (0: exact test)",
    )
    p.add_argument("--alpha", type=finite_float, default=0.05, help="false discovery rate")
    p.add_argument("--tail", choices=TAILS, default="greater", help="greater: excited neurons only")
    p.add_argument("--min-overlap", type=finite_float, default=10.0, metavar="S",
                   help="shortest acceptable camera/imaging overlap")  # fmt: skip
    p.add_argument("--crop", default=None, metavar="X,Y,W,H", help="crop (default: the model's / session's)")
    p.add_argument("--pixels-per-cell", type=int, default=32, help="HOG cell size when building prototypes")
    p.add_argument("--n-frames", type=int, default=10, help="least-neutral frames per prototype")
    p.add_argument("--seed", type=int, default=0, help="draws the circular shifts")
    p.add_argument("--batch-size", type=int, default=256, help="frames per step")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--no-plot", action="store_true", help="skip the figures")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs in --out")
    p.set_defaults(func=run)


def face_traces(args: argparse.Namespace, folder: Path, device: torch.device) -> FaceTraces:
    if args.traces:
        return traces_from_csv(args.traces)
    session = Session.open(folder)
    crop = parse_crop(args.crop) if args.crop is not None else None
    if args.ckpt:
        return traces_from_checkpoint(
            session, args.ckpt, crop=crop, device=device, batch_size=args.batch_size
        )
    if args.prototypes:
        protos = Prototypes.load(args.prototypes)
        info = {"prototypes_file": str(args.prototypes)}
    else:
        if crop is None and session.meta.get("crop"):
            crop = parse_crop(session.meta["crop"])
        protos = session_prototypes(
            session, crop=crop, hog={"pixels_per_cell": args.pixels_per_cell}, k=args.n_frames,
            device=device, batch_size=args.batch_size,
        )  # fmt: skip
        info = {"prototypes_file": None, "built_from": str(session.events_path)}
    face = traces_from_prototypes(
        session, protos, args.trace, crop=crop, device=device, batch_size=args.batch_size
    )
    face.info.update(info)
    return face


def run(args: argparse.Namespace) -> int:
    folder = Path(args.session)
    if not folder.is_dir():
        raise DataError(f"session folder not found: {folder}")
    out_dir = Path(args.out)
    check_out_dir(out_dir)
    if out_dir.is_dir():
        remove_stale_temps(out_dir)  # left by a run that was killed
    existing = [n for n in OUTPUTS if (out_dir / n).exists()]
    if existing and not args.overwrite:
        raise ConfigError(f"{out_dir} already holds {existing[0]}; pass --overwrite to replace the outputs")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1; got {args.batch_size}")
    num_shifts = parse_shifts(args.shifts)
    lags = parse_lags(args.lag_sweep) if args.lag_sweep is not None else default_lags(args.signal)
    device = pick_device(args.device)
    face = face_traces(args, folder, device)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="dff: baseline F0 fell below")
        run_ = analyse_session(
            folder, face, signal=args.signal, imaging_fs=args.imaging_fs, dff_window_s=args.dff_window,
            all_rois=args.all_rois, include_neutral=args.include_neutral, lags_s=lags,
            num_shifts=num_shifts, min_shift_s=args.min_shift, alpha=args.alpha, tail=args.tail,
            min_overlap_s=args.min_overlap, seed=args.seed,
        )  # fmt: skip
    write_outputs(run_, out_dir, plot=not args.no_plot)
    s = run_.summary
    frac = ", ".join(f"{k} {v:.0%}" for k, v in s["fraction_per_emotion"].items() if v > 0)
    print(
        f"{folder}: {s['num_significant']} of {s['num_neurons']} neurons significant (q < {args.alpha}): {frac}"
    )
    if "truth" in s:
        tr = s["truth"]
        print(
            f"vs truth/neurons.csv: precision {tr['precision']:.2f}, recall {tr['recall']:.2f}, "
            f"preferred-emotion agreement {tr['agreement']:.2f}"
        )
    print(f"wrote {out_dir / 'neurons.csv'} and {out_dir / 'summary.json'}")
    return 0
