"""Per-stimulus readouts graded by shock strength, on real tail-shock trial clips.

Per mouse, prototypes (neutral + pain) are built from a few strong trials, as a user would with
``mouseemo prototypes``; every other trial clip of that mouse is scored with the predict path
(:func:`mouseemo.inference.pipeline.predict_video`, as ``mouseemo predict`` does) and the summary
JSON's per-stimulus ``intensity`` of the pain window (peak pain similarity in the window minus its
mean over the clip's own pre-shock baseline) is read. Beside it, two label-free readouts of the same
unseen clips, which need no prototype:

* ``departure`` (also in the summary JSON): the mean departure of the window's HOG from the mean
  HOG of the trial's own pre-shock frames (:func:`mouseemo.inference.departure.departure_readout`);
* ``neutral_drop``: how far the similarity to the neutral prototype falls in the window below its
  pre-shock mean (from the same predict CSV).

And two face-free rules beside them, on the same clips, windows and crop (they read no face; a
readout that does not beat them has not shown that it reads an expression):

* ``pixel_change_trial``: the mean absolute gray-level change of the window's frames from the per-pixel
  median of the trial's own pre-shock frames (the ``--baseline-s`` seconds before the onset);
* ``pixel_change_session``: the same change from one reference per mouse, the per-pixel median of the
  pre-shock frames (same ``--baseline-s`` seconds before each onset) of every trial clip of that mouse,
  the prototype clips included. Sham (0 µA) trials enter it through their pre-shock frames only, like
  every other trial: which trials are sham is the current, the stimulus log this readout is scored
  against, so it is not used. The only stimulus information either pixel rule reads is each clip's
  pain window (onset, duration) from ``events.csv``, as the per-trial readouts do.

Every readout (``intensity``, ``departure``, ``neutral_drop`` and both pixel rules) reads the frames
inside ``--crop X,Y,W,H`` (default ``8,32,60,52``, the head of the 232x140 clips; ``none``: the whole
frame): prototypes are built from and clips are scored on the crop. The default HOG cell size on
that crop (``--pixels-per-cell 6``) was picked on the three shared mice only (cells of 4, 6, 8, 12 and
16 px; baselines of 1 and 2 s); other mice (``--src``) are scored with it unchanged.

Printed: Spearman rho between each readout and the current (µA) over the unseen trials (sham trials
included), per mouse and pooled over mice (raw values, and ranks within each mouse).

    python benchmarks/tail_shock_intensity.py --src ../shared/data/real/der_tail_shock
    python benchmarks/tail_shock_intensity.py --proto-trials i4_t0,i4_t1,i3_t0 --pixels-per-cell 8
    python benchmarks/tail_shock_intensity.py --cross   # + another mouse's prototypes, file vs own neutral
    python benchmarks/tail_shock_intensity.py --src /path/to/mice --crop none   # other mice, whole frame
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

import _harness
import numpy as np
from scipy.stats import rankdata, spearmanr

from mouseemo.data.crop import Crop, parse_crop
from mouseemo.data.events import read_events
from mouseemo.data.tail_shock import find_mice, read_clip_table
from mouseemo.data.video import VideoReader
from mouseemo.errors import ConfigError, DataError
from mouseemo.inference.inputs import VideoInput
from mouseemo.inference.pipeline import PredictOptions, predict_video
from mouseemo.inference.prototypes import build_from_videos
from mouseemo.inference.scorers import load_scorer
from mouseemo.models.joint_metrics import macro_f1

REPO = _harness.REPO
DEFAULT_SRC = REPO.parent / "shared" / "data" / "real" / "der_tail_shock"
DEFAULT_CROP = "8,32,60,52"


def check_crop_arg(text: str, mice: list[Path]) -> Crop | None:
    """``--crop`` as a crop (``None`` for ``none``), checked against the first clip of every mouse."""
    try:
        crop = None if text.strip().lower() == "none" else parse_crop(text)
        for mouse in mice:
            first = read_clip_table(mouse / "trials.csv")[0]["clip"]
            VideoReader(mouse / first, crop=crop, timestamps=None).close()
    except ConfigError as exc:
        raise ConfigError(f"--crop {text!r}: {exc} (or none for the whole frame)") from None
    return crop


def _neutral_drop(csv_path: Path, onset: float, duration: float, baseline_s: float) -> float | None:
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    t = np.array([float(r["time_s"]) for r in rows])
    s = np.array([float(r["similarity_neutral"]) for r in rows])
    base = s[(t >= onset - baseline_s) & (t < onset)]
    win = s[(t >= onset) & (t < onset + duration)]
    if not len(base) or not len(win):
        return None
    return float(base.mean() - win.mean())


def _clip_frames(video: Path, crop: Crop | None) -> tuple[np.ndarray, np.ndarray]:
    """Gray uint8 frames of ``video`` inside ``crop`` and their times (s, index / fps)."""
    with VideoReader(video, crop=crop, timestamps=None) as vr:
        frames = vr.read()
        return frames, np.arange(len(frames)) / vr.clock().fps


def pain_window(mouse: Path) -> tuple[float, float]:
    """``(onset, duration)`` in seconds of the pain window in ``mouse``'s ``events.csv`` (each clip's clock)."""
    events = read_events(mouse / "events.csv")
    pain = [i for i, label in enumerate(events.label) if label == "pain"]
    if not pain:
        raise DataError(f"{mouse / 'events.csv'}: no pain window")
    return float(events.onset[pain[0]]), float(events.duration[pain[0]])


def split_frames(frames, t, onset: float, duration: float, baseline_s: float):
    """``(pre-shock frames, window frames)``: the ``baseline_s`` seconds before ``onset`` and the window."""
    return frames[(t >= onset - baseline_s) & (t < onset)], frames[(t >= onset) & (t < onset + duration)]


def pixel_change(window: np.ndarray, reference: np.ndarray) -> float | None:
    """Mean absolute gray-level change of the ``window`` frames from a ``reference`` frame."""
    if not len(window) or reference is None:
        return None
    return float(np.abs(window.astype(np.float32) - reference).mean())


def median_frame(frames: np.ndarray) -> np.ndarray | None:
    """Per-pixel median of ``frames`` (``None`` when there are none)."""
    return np.median(frames, axis=0).astype(np.float32) if len(frames) else None


def session_reference(pre_shock: list[np.ndarray]) -> np.ndarray | None:
    """A mouse's reference frame: the per-pixel median of the pre-shock frames of all its clips, whatever
    their current (which trials are sham is not looked at)."""
    return median_frame(np.concatenate(pre_shock)) if pre_shock else None


def build_prototypes(
    mouse: Path, proto_clips: list[str], hog: dict, k: int, out: Path, crop: Crop | None = None
) -> Path:
    """``mouseemo prototypes`` on ``proto_clips`` of ``mouse``; the saved ``.npz``."""
    rows = read_clip_table(mouse / "trials.csv")
    missing = [c for c in proto_clips if c not in {r["clip"] for r in rows}]
    if missing:
        raise SystemExit(f"{mouse}: prototype clip(s) {missing} are not in trials.csv")
    events = mouse / "events.csv"
    items = [VideoInput(mouse / c, events, f"{mouse.name}_{Path(c).stem}") for c in proto_clips]
    protos = build_from_videos(items, crop=crop, hog=hog, mode="least-neutral", k=k, pool="groups")
    npz = out / f"{mouse.name}_prototypes.npz"
    protos.save(npz)
    return npz


def _frame_labels(csv_path: Path, onset: float, duration: float) -> tuple[np.ndarray, np.ndarray]:
    """(truth, predicted) per frame of a clip: pain inside the window, neutral before the onset
    (frames after the window are left out); 1 = pain."""
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    t = np.array([float(r["time_s"]) for r in rows])
    pred = np.array([r["label"] == "pain" for r in rows])
    keep = t < onset + duration
    return (t[keep] >= onset).astype(int), pred[keep].astype(int)


def score_mouse(
    mouse: Path,
    npz: Path,
    skip: list[str],
    out: Path,
    baseline_s: float,
    neutral: str = "prototypes",
    crop: Crop | None = None,
) -> list[dict]:
    """Readouts of every clip of ``mouse`` not in ``skip``, scored against the prototypes ``npz``
    (``neutral``: the file's neutral, or each clip's own pre-shock frames) inside ``crop``; one dict
    per clip."""
    rows = read_clip_table(mouse / "trials.csv")
    events = mouse / "events.csv"
    onset, duration = pain_window(mouse)
    frames = {r["clip"]: _clip_frames(mouse / r["clip"], crop) for r in rows}
    parts = {c: split_frames(f, t, onset, duration, baseline_s) for c, (f, t) in frames.items()}
    session_ref = session_reference([pre for pre, _ in parts.values()])
    scorer = load_scorer(npz, None, "cpu", neutral=neutral)
    results = []
    for r in rows:
        if r["clip"] in skip:
            continue
        item = VideoInput(mouse / r["clip"], events, f"{mouse.name}_{Path(r['clip']).stem}_{neutral}")
        opts = PredictOptions(plot=False, overwrite=True, departure_baseline_s=baseline_s, crop=crop)
        summary = predict_video(item, scorer, out, opts)
        stim = [s for s in summary["stimuli"] if s["label"] == "pain"][0]
        truth, pred = _frame_labels(out / f"{item.stem}.csv", stim["onset"], stim["duration"])
        pre, window = parts[r["clip"]]
        results.append(
            {
                "mouse": mouse.name,
                "clip": r["clip"],
                "current": float(r["current_uA"]),
                "intensity": stim.get("intensity"),
                "departure": stim.get("departure"),
                "neutral_drop": _neutral_drop(
                    out / f"{item.stem}.csv", stim["onset"], stim["duration"], baseline_s
                ),
                "pixel_change_trial": pixel_change(window, median_frame(pre)),
                "pixel_change_session": pixel_change(window, session_ref),
                "truth": truth,
                "pred": pred,
            }
        )
    return results


def _macro_f1(results: list[dict], min_current: float) -> float:
    """Frame-level pain-vs-neutral macro-F1: windows of trials >= ``min_current`` are pain, every
    trial's pre-shock frames neutral."""
    truth, pred = [], []
    for r in results:
        t, p = r["truth"], r["pred"]
        if r["current"] < min_current:  # a weak or sham trial's window is not counted as pain
            p, t = p[t == 0], t[t == 0]
        truth.append(t)
        pred.append(p)
    return macro_f1(np.concatenate(truth), np.concatenate(pred))


def cross_mouse(
    mice: list[Path],
    proto: list[str],
    hog: dict,
    k: int,
    out: Path,
    baseline_s: float,
    report: _harness.Report,
    crop: Crop | None = None,
) -> None:
    """Prototypes from another mouse: each mouse's clips scored with the next mouse's prototypes,
    against the file's neutral and against each clip's own pre-shock face. Prints rho and the
    frame-level pain-vs-neutral macro-F1 (windows of the 300/500 µA trials vs all pre-shock frames)."""
    npz = {m.name: build_prototypes(m, proto, hog, k, out, crop) for m in mice}
    report.line("\nPrototypes from another mouse (each mouse scored with the next one's), all its trials\n")
    report.line("| scored mouse | prototypes of | neutral | rho intensity | frame macro-F1 pain vs neutral |")
    report.line("|---|---|---|---|---|")
    pooled: dict[str, list] = {"prototypes": [], "own": []}
    for i, m in enumerate(mice):
        src = mice[(i + 1) % len(mice)]
        for neutral in ("prototypes", "own"):
            res = score_mouse(m, npz[src.name], [], out, baseline_s, neutral, crop)
            pooled[neutral] += res
            rho = _rho([r["intensity"] for r in res], [r["current"] for r in res])
            report.line(f"| {m.name} | {src.name} | {neutral} | {rho:.2f} | {_macro_f1(res, 300):.3f} |")
    for neutral, res in pooled.items():
        rho = _rho([r["intensity"] for r in res], [r["current"] for r in res])
        report.line(f"| pooled | | {neutral} | {rho:.2f} | {_macro_f1(res, 300):.3f} |")


def _rho(x, y) -> float:
    ok = [i for i, v in enumerate(x) if v is not None]
    if len(ok) < 3:
        return float("nan")
    return float(spearmanr([x[i] for i in ok], [y[i] for i in ok]).statistic)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", default=str(DEFAULT_SRC), help="folder of mouse folders of trial clips")
    ap.add_argument(
        "--proto-trials",
        default="i4_t0.mp4,i4_t1.mp4,i4_t2.mp4",
        help="clips each mouse's prototypes are built from (default: three 500 µA trials)",
    )
    ap.add_argument(
        "--pixels-per-cell",
        type=int,
        default=6,
        help="HOG cell size (default 6: 10x8 cells on the default 60x52 crop; the whole frame is 232x140)",
    )
    ap.add_argument("--k", type=int, default=10, help="least-neutral frames per pain prototype")
    ap.add_argument(
        "--baseline-s", type=float, default=2.0, help="pre-shock seconds of the departure baseline"
    )
    ap.add_argument(
        "--out", default=None, help="folder for prototypes and predictions (default: a temporary one)"
    )
    ap.add_argument(
        "--crop",
        default=DEFAULT_CROP,
        metavar="X,Y,W,H|none",
        help=f"region every readout reads (default {DEFAULT_CROP}: the head; none: the whole frame)",
    )
    ap.add_argument("--csv", default=None, help="also write the per-clip readouts here")
    ap.add_argument(
        "--cross",
        action="store_true",
        help="also score each mouse with another mouse's prototypes, against the file's neutral and "
        "against each clip's own pre-shock face (`mouseemo predict --neutral own`)",
    )
    _harness.add_markdown_argument(ap)
    args = ap.parse_args(argv)
    report = _harness.Report(args.markdown, seed=None)
    if not Path(args.src).is_dir():
        print(f"tail-shock clips not found: {args.src}", file=sys.stderr)
        return 2
    proto = [c if c.endswith(".mp4") else f"{c}.mp4" for c in args.proto_trials.split(",") if c]
    hog = {"pixels_per_cell": args.pixels_per_cell}
    try:
        mice = find_mice(args.src)
        crop = check_crop_arg(args.crop, mice)
    except (ConfigError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        results = []
        for mouse in mice:
            npz = build_prototypes(mouse, proto, hog, args.k, out, crop)
            results += score_mouse(mouse, npz, proto, out, args.baseline_s, crop=crop)
        if args.cross:
            cross_mouse(mice, proto, hog, args.k, out, args.baseline_s, report, crop)
    # the face-free rules first
    readouts = ("pixel_change_trial", "pixel_change_session", "intensity", "departure", "neutral_drop")
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            fields = [f for f in results[0] if f not in ("truth", "pred")]
            w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
            w.writeheader()
            w.writerows(results)
    report.line(f"\nSpearman rho, readout vs current, unseen trials (prototypes from {', '.join(proto)}; "
          f"HOG {args.pixels_per_cell}-px cells; crop {args.crop})\n")  # fmt: skip
    report.line("| mouse | trials | " + " | ".join(readouts) + " |")
    report.line("|---|---|" + "---|" * len(readouts))
    mice = sorted({r["mouse"] for r in results})
    for m in mice:
        rs = [r for r in results if r["mouse"] == m]
        cur = [r["current"] for r in rs]
        report.line(
            f"| {m} | {len(rs)} | "
            + " | ".join(f"{_rho([r[k] for r in rs], cur):.2f}" for k in readouts)
            + " |"
        )
    cur = [r["current"] for r in results]
    report.line(
        f"| pooled | {len(results)} | "
        + " | ".join(f"{_rho([r[k] for r in results], cur):.2f}" for k in readouts)
        + " |"
    )
    ranked = []
    for k in readouts:  # ranks within each mouse remove the mice's different scales
        vals = []
        for m in mice:
            v = [r[k] for r in results if r["mouse"] == m]
            vals += list(rankdata([x if x is not None else np.nan for x in v], nan_policy="omit"))
        ranked.append(
            _rho(
                [None if np.isnan(v) else v for v in vals],
                [r["current"] for m in mice for r in results if r["mouse"] == m],
            )
        )
    report.line(
        f"| pooled, ranks within mouse | {len(results)} | " + " | ".join(f"{v:.2f}" for v in ranked) + " |"
    )
    means = {
        c: {
            k: np.nanmean([r[k] if r[k] is not None else np.nan for r in results if r["current"] == c])
            for k in readouts
        }
        for c in sorted(set(cur))
    }
    report.line("\nmean readout per current (µA): " + "; ".join(
        f"{c:g}: " + ", ".join(f"{k} {v:.3f}" for k, v in means[c].items()) for c in means))  # fmt: skip
    report.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
