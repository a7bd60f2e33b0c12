"""``mouseemo predict``: similarity of every frame to prototypes, and a label per frame.

Example::

    mouseemo predict data/m01/s02 other.mp4 --prototypes protos.npz --out predictions/

writes, per input, ``<out>/<stem>.csv`` (``frame,time_s,label,similarity_<name>...``), a summary
``<stem>.json`` (frames, fps, seconds per label, per-stimulus intensity and persistence when events
are known) and ``<stem>.png`` (min-max scaled similarity traces). The three files are written to
temporary names and renamed together at the end, so a video is either finished or absent. Finished
videos are skipped unless ``--overwrite``. The stem of a session folder is ``<animal>_<session>``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import torch

from mouseemo.commands.prototypes import (
    VideoInput,
    frame_times,
    hog_input_size,
    iter_hog,
    pick_device,
    resolve_inputs,
)
from mouseemo.data.events import read_events
from mouseemo.data.video import VideoReader, parse_crop
from mouseemo.errors import ConfigError
from mouseemo.models.components.prototypes import classify, stimulus_readouts
from mouseemo.models.prototypes_io import Prototypes
from mouseemo.ops.similarity import minmax_scale, pearson_similarity
from mouseemo.utils.io import atomic_path, json_default

log = logging.getLogger(__name__)

OUTPUT_SUFFIXES = (".csv", ".png", ".json")


def outputs_for(out_dir: Path, stem: str) -> dict[str, Path]:
    return {suffix: out_dir / f"{stem}{suffix}" for suffix in OUTPUT_SUFFIXES}


def predict_video(
    item: VideoInput,
    protos: Prototypes,
    out_dir: Path,
    crop=None,
    margin: float = 0.0,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    prototypes_path: str = "",
    plot: bool = True,
) -> dict:
    """Label every frame of one video; write its CSV, JSON summary and plot. Returns the summary.

    Raises:
        ConfigError: the crop does not fit the video, or the frame size does not match the prototypes.
        DataError: unreadable video or events.
    """
    device = torch.device(device)
    crop = parse_crop(crop) if crop is not None else protos.crop
    names = protos.names
    events = read_events(item.events) if item.events is not None else None
    paths = outputs_for(out_dir, item.stem)
    if not plot:
        del paths[".png"]
    prototypes = torch.as_tensor(protos.matrix, device=device)
    with VideoReader(item.video, crop=crop) as vr:
        size = hog_input_size(vr, protos.resize)
        protos.check_compatible(protos.hog, size, source=f"{item.video} with crop {crop}")
        fps = vr.fps
        sims, labels, times = [], [], []
        for start, frames, feats in iter_hog(vr, protos.hog, protos.resize, device, batch_size):
            sim = pearson_similarity(feats, prototypes)
            labels.append(classify(sim, names, margin=margin).cpu().numpy())
            sims.append(sim.cpu().numpy())
            times.append(frame_times(vr, start, len(frames)))
    sim = np.concatenate(sims) if sims else np.zeros((0, len(names)), np.float32)
    lab = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    t = np.concatenate(times) if times else np.zeros(0)
    summary = _summary(item, protos, prototypes_path, crop, margin, fps, sim, lab, t, events)

    with ExitStack() as stack:
        # renamed in reverse order on success: the JSON, whose presence marks a finished video, last
        tmp = {s: stack.enter_context(atomic_path(paths[s])) for s in reversed(OUTPUT_SUFFIXES) if s in paths}
        _write_csv(tmp[".csv"], names, sim, lab, t)
        if plot:
            from mouseemo.viz.expressions import plot_similarity_traces

            windows = list(zip(events.onset, events.end, events.label)) if events is not None else []
            plot_similarity_traces(
                t, minmax_scale(sim, axis=0), names, tmp[".png"], windows=windows, title=item.stem
            )
        tmp[".json"].write_text(json.dumps(summary, indent=2, default=json_default) + "\n")
    return summary


def _write_csv(path: Path, names: list[str], sim: np.ndarray, lab: np.ndarray, t: np.ndarray) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["frame", "time_s", "label", *[f"similarity_{n}" for n in names]])
        for i in range(len(lab)):
            w.writerow([i, f"{t[i]:.6f}", names[lab[i]], *[f"{v:.6f}" for v in sim[i]]])


def _summary(item, protos, prototypes_path, crop, margin, fps, sim, lab, t, events) -> dict:
    names = protos.names
    counts = np.bincount(lab, minlength=len(names)) if len(lab) else np.zeros(len(names), int)
    summary = {
        "video": str(item.video),
        "events": str(item.events) if item.events is not None else None,
        "prototypes": prototypes_path,
        "names": names,
        "frames": len(lab),
        "fps": fps,
        "duration_s": float(t[-1] - t[0] + 1.0 / fps) if len(t) else 0.0,
        "crop": list(crop) if crop is not None else None,
        "resize": list(protos.resize) if protos.resize is not None else None,
        "margin": margin,
        # frame counts over the nominal rate: exact for constant-rate video, close with dropped frames
        "seconds_per_label": {n: float(c / fps) for n, c in zip(names, counts)},
        "fraction_per_label": {n: float(c / max(len(lab), 1)) for n, c in zip(names, counts)},
        "mean_similarity": {
            n: float(np.nanmean(sim[:, j])) if len(sim) else None for j, n in enumerate(names)
        },
    }
    if events is not None:
        stimuli = []
        for i in np.argsort(events.onset, kind="stable"):
            label = events.label[i]
            if label == "neutral":
                continue
            entry = {
                "onset": float(events.onset[i]),
                "duration": float(events.duration[i]),
                "label": label,
                "value": None if np.isnan(events.value[i]) else float(events.value[i]),
            }
            if label in names:
                # persistence is looked for until the next stimulus starts
                later = events.onset[events.onset > events.onset[i]]
                post = float(later.min() - events.end[i]) if len(later) else None
                r = stimulus_readouts(
                    sim[:, names.index(label)], t, events.onset[i], events.duration[i], post_s=post
                )
                entry.update(r)
            else:
                entry["note"] = f"no {label!r} prototype"
            stimuli.append(entry)
        summary["stimuli"] = stimuli
    return summary


# -- command line --------------------------------------------------------------------------------
def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict",
        help="label every frame by its most similar prototype; CSV + summary JSON + plot per video",
        description="Similarity of every frame to each prototype (Pearson r of HOG features) and a label "
        "per frame. Writes <out>/<stem>.csv, .json and .png per video.",
    )
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="face video(s) or session folder(s)")
    p.add_argument("--prototypes", required=True, metavar="PROTOS.npz", help="from `mouseemo prototypes`")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--crop", default=None, metavar="X,Y,W,H", help="override the crop stored with the prototypes"
    )
    p.add_argument(
        "--events",
        action="append",
        metavar="EVENTS.csv",
        help="events file, once per VIDEO, for per-stimulus readouts (default: the session's events.csv)",
    )
    p.add_argument(
        "--margin", type=float, default=0.0, help="best-minus-neutral similarity below this stays neutral"
    )
    p.add_argument("--batch-size", type=int, default=256, help="frames per HOG step")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--no-plot", action="store_true", help="skip the traces plot")
    p.add_argument("--overwrite", action="store_true", help="redo videos whose outputs exist")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1; got {args.batch_size}")
    if args.margin < 0:
        raise ConfigError(f"--margin must be >= 0; got {args.margin}")
    protos = Prototypes.load(args.prototypes)
    items = resolve_inputs(args.videos, args.events, need_events=False)
    stems = [i.stem for i in items]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise ConfigError(
            f"several inputs would write the same outputs {dupes} in {args.out}; predict them separately"
        )
    crop = parse_crop(args.crop) if args.crop is not None else None
    device = pick_device(args.device)
    out_dir = Path(args.out)
    done = 0
    for item in items:
        paths = outputs_for(out_dir, item.stem)
        wanted = [p for s, p in paths.items() if s != ".png" or not args.no_plot]
        if not args.overwrite and all(p.exists() for p in wanted):
            print(f"skip {item.video}: {paths['.csv']} exists (use --overwrite)")
            continue
        summary = predict_video(
            item,
            protos,
            out_dir,
            crop=crop,
            margin=args.margin,
            batch_size=args.batch_size,
            device=device,
            prototypes_path=str(args.prototypes),
            plot=not args.no_plot,
        )
        top = max(summary["seconds_per_label"].items(), key=lambda kv: kv[1])[0] if summary["frames"] else "-"
        print(f"{item.video}: {summary['frames']} frames -> {paths['.csv']} (most frames: {top})")
        done += 1
    return 0
