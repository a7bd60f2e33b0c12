"""``mouseemo prototypes``: build prototypical expressions from videos and their stimulus events.

Example::

    mouseemo prototypes data/m01/s01 --out protos.npz --crop 40,20,256,192
    mouseemo prototypes face.mp4 --events events.csv --out protos.npz --mode window-mean

HOG is computed chunk by chunk while the video decodes (constant memory in the video's length): the
neutral prototype is a running mean of the baseline frames, and only frames inside stimulus windows
keep their features until the emotion prototypes are chosen.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mouseemo.commands._args import check_out_file
from mouseemo.constants import EMOTIONS
from mouseemo.data.events import Events, read_events
from mouseemo.data.session import Session
from mouseemo.data.video import VideoReader, parse_crop, resize_frames
from mouseemo.errors import ConfigError, DataError
from mouseemo.models.components.prototypes import (
    MODES,
    NEUTRAL,
    build_prototypes,
    pool_prototypes,
)
from mouseemo.models.prototypes_io import Prototypes, hog_params, to_ranges
from mouseemo.utils.device import pick_device
from mouseemo.utils.io import remove_stale_temps

log = logging.getLogger(__name__)


# -- shared with `mouseemo predict` --------------------------------------------------------------
@dataclass
class VideoInput:
    """One input: a video file, its events file (if any) and the output stem."""

    video: Path
    events: Path | None
    stem: str


def resolve_inputs(paths: Sequence[str], events: Sequence[str] | None, need_events: bool) -> list[VideoInput]:
    """Turn command-line VIDEO arguments (files or session folders) and ``--events`` into inputs.

    A session folder contributes its face video and ``events.csv``; a video file uses the
    ``events.csv`` beside it unless ``--events`` is given. ``--events`` must be given once per VIDEO.

    Raises:
        DataError: a missing video, folder or events file (checked for every input before any work).
        ConfigError: ``--events`` count does not match, or events are needed and absent.
    """
    events = list(events or [])
    if events and len(events) != len(paths):
        raise ConfigError(f"give --events once per VIDEO: {len(paths)} video(s), {len(events)} --events")
    out: list[VideoInput] = []
    for i, raw in enumerate(paths):
        p = Path(raw)
        if p.is_dir():
            s = Session.open(p)
            video, ev, stem = s.video, s.events_path, f"{s.animal}_{s.session}"
        elif p.is_file():
            video, stem = p, p.stem
            beside = p.with_name("events.csv")
            ev = beside if beside.is_file() else None
        else:
            raise DataError(f"video not found: {p}")
        if events:
            ev = Path(events[i])
            if not ev.is_file():
                raise DataError(f"events file not found: {ev}")
        if need_events and ev is None:
            raise ConfigError(f"{p}: no events file; pass --events EVENTS.csv (one per VIDEO)")
        out.append(VideoInput(video=video, events=ev, stem=stem))
    return out


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"H,W"`` -> ``(H, W)``."""
    if text is None:
        return None
    try:
        h, w = (int(v) for v in str(text).split(","))
    except ValueError:
        raise ConfigError(f"size must be H,W (two integers); got {text!r}") from None
    if h <= 0 or w <= 0:
        raise ConfigError(f"size must be positive; got {text!r}")
    return h, w


def iter_hog(
    reader: VideoReader,
    hog: dict,
    resize: tuple[int, int] | None,
    device: torch.device,
    chunk_size: int = 256,
) -> Iterator[tuple[int, np.ndarray, torch.Tensor]]:
    """Yield ``(first_index, frames uint8 (b, H, W), HOG (b, D) float32 on device)`` per chunk."""
    from mouseemo.ops import hog as hog_op

    for start, frames in reader.iter_chunks(chunk_size):
        frames = resize_frames(frames, resize)
        x = torch.from_numpy(frames).to(device, non_blocking=True)
        yield start, frames, hog_op(x, **hog).float()


def frame_times(reader: VideoReader, start: int, count: int) -> np.ndarray:
    """Camera-clock times of frames ``start .. start + count`` (timestamps file or ``index / fps``)."""
    if reader.timestamps_path is not None:
        return reader.timestamps[start : start + count]
    return np.arange(start, start + count, dtype=np.float64) / reader.fps


def hog_input_size(reader: VideoReader, resize: tuple[int, int] | None) -> tuple[int, int]:
    return resize if resize is not None else (reader.height, reader.width)


# -- building ------------------------------------------------------------------------------------
@dataclass
class _VideoFeatures:
    """What one streamed pass keeps: baseline running sum, and features of window frames."""

    source: str
    baseline_sum: np.ndarray | None = None
    baseline_frames: list[np.ndarray] = field(default_factory=list)
    window_feats: list[np.ndarray] = field(default_factory=list)
    window_frames: list[np.ndarray] = field(default_factory=list)
    window_ids: dict[str, list[np.ndarray]] = field(default_factory=dict)
    num_frames: int = 0
    t_first: float = np.nan
    t_last: float = np.nan

    @property
    def num_baseline(self) -> int:
        return int(sum(len(b) for b in self.baseline_frames))


def _stream_video(
    item: VideoInput,
    events: Events,
    crop,
    hog: dict,
    resize: tuple[int, int] | None,
    device: torch.device,
    chunk_size: int,
    frame_size: tuple[int, int] | None,
) -> tuple[_VideoFeatures, tuple[int, int]]:
    labels = [lab for lab in events.vocabulary if lab in events.label and lab != NEUTRAL]
    if not labels:
        raise DataError(f"{item.events}: no stimulus events (only {NEUTRAL!r} or none)")
    acc = _VideoFeatures(source=str(item.video), window_ids={lab: [] for lab in labels})
    with VideoReader(item.video, crop=crop) as vr:
        size = hog_input_size(vr, resize)
        if frame_size is not None and size != frame_size:
            raise ConfigError(
                f"{item.video}: frames are {size[1]}x{size[0]} (w x h) after crop/resize, the first video's "
                f"are {frame_size[1]}x{frame_size[0]}: pass --crop with the same size, or --resize"
            )
        for start, frames, feats in iter_hog(vr, hog, resize, device, chunk_size):
            t = frame_times(vr, start, len(frames))
            idx = np.arange(start, start + len(frames))
            if acc.num_frames == 0:
                acc.t_first = float(t[0])
            acc.t_last = float(t[-1])
            acc.num_frames += len(frames)
            f = feats.cpu().numpy()
            base = events.baseline_mask(t)
            if base.any():
                s = f[base].astype(np.float64).sum(axis=0)
                acc.baseline_sum = s if acc.baseline_sum is None else acc.baseline_sum + s
                acc.baseline_frames.append(idx[base])
            ids = {lab: events.window_ids(t, lab) for lab in labels}
            inside = np.any([v >= 0 for v in ids.values()], axis=0)
            if inside.any():
                acc.window_feats.append(f[inside])
                acc.window_frames.append(idx[inside])
                for lab in labels:
                    acc.window_ids[lab].append(ids[lab][inside])
    if acc.num_frames == 0:
        raise DataError(f"no frames decoded from {item.video}")
    return acc, size


def _check_selected(acc: _VideoFeatures, events: Events, item: VideoInput) -> dict[str, np.ndarray]:
    windows = {lab: np.concatenate(v) if v else np.zeros(0, np.int64) for lab, v in acc.window_ids.items()}
    for lab, ids in windows.items():
        if not (ids >= 0).any():
            wins = ", ".join(f"{a:.2f}-{b:.2f}" for a, b in events.windows(lab)[:4])
            raise DataError(
                f"{item.events}: the {lab!r} windows ({wins} s) select no frames of {item.video}, "
                f"which covers {acc.t_first:.2f}-{acc.t_last:.2f} s (are the events on the video's clock?)"
            )
    if acc.baseline_sum is None:
        raise DataError(
            f"{item.events}: no baseline frames in {item.video}: need 'neutral' events or frames before "
            "the first stimulus"
        )
    return windows


def build_from_videos(
    items: Sequence[VideoInput],
    crop=None,
    hog: dict | None = None,
    mode: str = "least-neutral",
    k: int = 10,
    drop_first_trial: bool = False,
    pool: str = "groups",
    resize: tuple[int, int] | None = None,
    device: torch.device | str = "cpu",
    chunk_size: int = 256,
) -> Prototypes:
    """Prototypes from videos and their events (see :mod:`mouseemo.models.components.prototypes`).

    Args:
        items: inputs from :func:`resolve_inputs` (each needs an events file).
        crop: ``(x, y, w, h)`` for every video, or ``None``.
        hog: HOG parameters (:func:`mouseemo.models.prototypes_io.hog_params`).
        mode, k, drop_first_trial: how emotion prototypes are chosen.
        pool: ``"groups"``: prototypes per video, averaged; ``"frames"``: all videos' frames pooled.
        resize: ``(H, W)`` to resize cropped frames to, or ``None``.
        device: where HOG runs.
        chunk_size: frames decoded and processed per step.
    """
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {list(MODES)}; got {mode!r}")
    if pool not in ("groups", "frames"):
        raise ConfigError(f"pool must be 'groups' or 'frames'; got {pool!r}")
    hog = hog_params(**(hog or {}))
    crop = parse_crop(crop)
    device = torch.device(device)
    accs, frame_size = [], None
    for item in items:
        if item.events is None:
            raise ConfigError(f"{item.video}: no events file; pass --events")
        events = read_events(item.events)
        acc, frame_size = _stream_video(item, events, crop, hog, resize, device, chunk_size, frame_size)
        windows = _check_selected(acc, events, item)
        accs.append((item, acc, windows))
        log.info("%s: %d frames, %d baseline", item.video, acc.num_frames, acc.num_baseline)

    def stacked(acc: _VideoFeatures) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate(acc.window_feats), np.concatenate(acc.window_frames)

    frames_meta: dict[str, dict[str, list[list[int]]]] = {}
    if pool == "groups" or len(accs) == 1:
        sets = []
        for item, acc, windows in accs:
            feats, frames = stacked(acc)
            neutral = acc.baseline_sum / acc.num_baseline
            pset = build_prototypes(
                feats, windows, neutral=neutral, mode=mode, k=k, drop_first_trial=drop_first_trial,
                source=str(item.video),
            )  # fmt: skip
            sets.append(pset)
            frames_meta.setdefault(NEUTRAL, {})[str(item.video)] = to_ranges(
                np.concatenate(acc.baseline_frames)
            )
            for name, used in pset.frames.items():
                if name != NEUTRAL:
                    frames_meta.setdefault(name, {})[str(item.video)] = to_ranges(frames[used])
        pooled = pool_prototypes(sets) if len(sets) > 1 else sets[0]
    else:
        neutral = sum(acc.baseline_sum for _, acc, _ in accs) / sum(acc.num_baseline for _, acc, _ in accs)
        labels = [lab for lab in EMOTIONS if any(lab in w for _, _, w in accs)]
        feats_all, frame_all, src_all = [], [], []
        parts: dict[str, list[np.ndarray]] = {lab: [] for lab in labels}
        offset = dict.fromkeys(labels, 0)
        for v, (item, acc, windows) in enumerate(accs):
            feats, frames = stacked(acc)
            feats_all.append(feats)
            frame_all.append(frames)
            src_all.append(np.full(len(frames), v))
            frames_meta.setdefault(NEUTRAL, {})[str(item.video)] = to_ranges(
                np.concatenate(acc.baseline_frames)
            )
            for lab in labels:
                ids = windows.get(lab)
                if ids is None:
                    parts[lab].append(np.full(len(frames), -1, dtype=np.int64))
                    continue
                if drop_first_trial and (ids >= 0).any():
                    ids = np.where(ids == ids[ids >= 0].min(), -1, ids)  # each video's first trial
                # trials of different videos stay distinct windows
                parts[lab].append(np.where(ids >= 0, ids + offset[lab], -1))
                offset[lab] += int(ids.max()) + 1
        feats, frames, srcs = np.concatenate(feats_all), np.concatenate(frame_all), np.concatenate(src_all)
        win = {lab: np.concatenate(p) for lab, p in parts.items()}
        pooled = build_prototypes(
            feats, win, neutral=neutral, mode=mode, k=k, drop_first_trial=False,
            source="the pooled videos",
        )  # fmt: skip
        for name, used in pooled.frames.items():
            if name == NEUTRAL:
                continue
            for v, (item, _, _) in enumerate(accs):
                sel = used[srcs[used] == v]
                if len(sel):
                    frames_meta.setdefault(name, {})[str(item.video)] = to_ranges(frames[sel])
    return Prototypes(
        matrix=pooled.matrix,
        names=pooled.names,
        hog=hog,
        frame_size=frame_size,
        crop=crop,
        resize=resize,
        mode=mode,
        k=k,
        drop_first_trial=drop_first_trial,
        pool=pool,
        sources=[str(item.video) for item in items],
        frames=frames_meta,
        extra={"events": [str(item.events) for item in items]},
    )


# -- command line --------------------------------------------------------------------------------
def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "prototypes",
        help="build prototypical expressions (neutral + one per stimulus label) from videos and events",
        description="Build prototypical expressions (Dolensek et al. 2020) from face videos and their "
        "events.csv (onset,duration,label[,value] in seconds on the video's clock).",
    )
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="face video(s) or session folder(s)")
    p.add_argument(
        "--events",
        action="append",
        metavar="EVENTS.csv",
        help="events file, once per VIDEO (default: the session folder's / the video's events.csv)",
    )
    p.add_argument("--out", required=True, metavar="PROTOS.npz", help="prototypes file to write")
    p.add_argument("--crop", default=None, metavar="X,Y,W,H", help="crop applied to every frame")
    p.add_argument("--resize", default=None, metavar="H,W", help="resize cropped frames before HOG")
    p.add_argument("--n-frames", type=int, default=10, help="least-neutral frames per emotion (k)")
    p.add_argument("--mode", choices=MODES, default="least-neutral", help="how emotion prototypes are built")
    p.add_argument("--drop-first-trial", action="store_true", help="leave each label's first trial out")
    p.add_argument(
        "--pool",
        choices=("groups", "frames"),
        default="groups",
        help="several videos: average per-video prototypes (groups) or pool their frames",
    )
    p.add_argument("--pixels-per-cell", type=int, default=32, help="HOG cell size in pixels")
    p.add_argument("--orientations", type=int, default=8, help="HOG orientation bins")
    p.add_argument("--no-sqrt", action="store_true", help="HOG without square-root compression")
    p.add_argument("--batch-size", type=int, default=256, help="frames per HOG step")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    check_out_file(out, args.overwrite)
    if out.parent.is_dir():
        remove_stale_temps(out.parent)  # left by a run that was killed
    if args.n_frames < 1:
        raise ConfigError(f"--n-frames must be >= 1; got {args.n_frames}")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1; got {args.batch_size}")
    items = resolve_inputs(args.videos, args.events, need_events=True)
    protos = build_from_videos(
        items,
        crop=parse_crop(args.crop),
        hog={
            "orientations": args.orientations,
            "pixels_per_cell": args.pixels_per_cell,
            "transform_sqrt": not args.no_sqrt,
        },
        mode=args.mode,
        k=args.n_frames,
        drop_first_trial=args.drop_first_trial,
        pool=args.pool,
        resize=parse_size(args.resize),
        device=pick_device(args.device),
        chunk_size=args.batch_size,
    )
    protos.save(out)
    print(f"wrote {out}: prototypes {', '.join(protos.names)} ({protos.feature_dim} HOG features)")
    return 0
