"""Prototypical expressions from videos and their stimulus events (``mouseemo prototypes``).

HOG is computed chunk by chunk while the video decodes (constant memory in the video's length): the
neutral prototype is a running mean of the baseline frames, and only frames inside stimulus windows
keep their features until the emotion prototypes are chosen. The prototypes are fitted by the same
function as training's (:func:`mouseemo.models.components.prototypes.fit_prototypes`), and the baseline
is the one rule of :meth:`mouseemo.data.events.Events.baseline_mask`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from mouseemo.constants import EMOTIONS
from mouseemo.data.crop import Crop
from mouseemo.data.events import Events, read_events
from mouseemo.data.session import Session, resolve_crop
from mouseemo.data.video import VideoReader, resize_frames
from mouseemo.errors import ConfigError, DataError
from mouseemo.inference.inputs import VideoInput
from mouseemo.models.components.prototypes import MODES, NEUTRAL, FitUnit, fit_prototypes
from mouseemo.models.prototypes_io import Prototypes, hog_params, to_ranges
from mouseemo.ops import hog as hog_op

log = logging.getLogger(__name__)


# -- streaming HOG -------------------------------------------------------------------------------
def iter_hog(
    reader: VideoReader,
    hog: dict,
    resize: tuple[int, int] | None,
    device: torch.device,
    chunk_size: int = 256,
) -> Iterator[tuple[int, np.ndarray, torch.Tensor]]:
    """Yield ``(first_index, frames uint8 (b, H, W), HOG (b, D) float32 on device)`` per chunk."""

    for start, frames in reader.iter_chunks(chunk_size):
        frames = resize_frames(frames, resize)
        x = torch.from_numpy(frames).to(device, non_blocking=True)
        yield start, frames, hog_op(x, **hog).float()


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
                f"are {frame_size[1]}x{frame_size[0]}: give a `crop` of the same size, or `resize`"
            )
        clock = vr.clock(strict=True)
        for start, frames, feats in iter_hog(vr, hog, resize, device, chunk_size):
            t = clock.at(start, len(frames))
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
        clock.all(acc.num_frames)  # a timestamps file has a row per frame
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


def _one_crop(items: Sequence[VideoInput], crop) -> Crop | None:
    """The crop of every video (:func:`~mouseemo.data.session.resolve_crop`): the prototypes file
    keeps one, so videos whose session folders hold different crops need ``crop``."""
    if not items:
        return resolve_crop(crop)
    crops = {str(item.video): resolve_crop(crop, None, item.meta) for item in items}
    if len(set(crops.values())) > 1:
        listed = ", ".join(f"{v}: {list(c) if c else None}" for v, c in crops.items())
        raise ConfigError(f"the videos' crops differ ({listed}); a prototypes file has one crop: give `crop`")
    return next(iter(crops.values()))


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
        items: inputs from :func:`~mouseemo.inference.inputs.resolve_inputs` (each needs an events file).
        crop: ``(x, y, w, h)`` (or a preset name) for every video, ``"none"`` for the whole frame;
            ``None``: each session folder's ``session.json`` crop (the whole frame for a plain
            video file). Every video must end up with the same crop: the file keeps one.
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
    crop = _one_crop(items, crop)
    device = torch.device(device)
    accs, frame_size = [], None
    for item in items:
        if item.events is None:
            raise ConfigError(f"{item.video}: no events file; give `events`")
        events = read_events(item.events)
        acc, frame_size = _stream_video(item, events, crop, hog, resize, device, chunk_size, frame_size)
        windows = _check_selected(acc, events, item)
        accs.append((item, acc, windows))
        log.info("%s: %d frames, %d baseline", item.video, acc.num_frames, acc.num_baseline)

    def stacked(acc: _VideoFeatures) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate(acc.window_feats), np.concatenate(acc.window_frames)

    frames_meta: dict[str, dict[str, list[list[int]]]] = {}
    if pool == "groups" or len(accs) == 1:
        units = [
            FitUnit(str(item.video), stacked(acc)[0], windows, neutral=acc.baseline_sum / acc.num_baseline)
            for item, acc, windows in accs
        ]
        pooled, sets = fit_prototypes(units, mode=mode, k=k, drop_first_trial=drop_first_trial)
        for (item, acc, _), pset in zip(accs, sets):
            frames = stacked(acc)[1]
            frames_meta.setdefault(NEUTRAL, {})[str(item.video)] = to_ranges(
                np.concatenate(acc.baseline_frames)
            )
            for name, used in pset.frames.items():
                if name != NEUTRAL:
                    frames_meta.setdefault(name, {})[str(item.video)] = to_ranges(frames[used])
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
        # each video's first trial is already left out above
        pooled, _ = fit_prototypes(
            [FitUnit("the pooled videos", feats, win, neutral=neutral)], mode=mode, k=k
        )
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


def session_prototypes(
    session: Session,
    crop=None,
    hog: dict | None = None,
    k: int = 10,
    mode: str = "least-neutral",
    device: torch.device | str = "cpu",
    batch_size: int = 256,
) -> Prototypes:
    """The session's own prototypes from its ``events.csv`` (neutral from the baseline), with
    ``crop``, else the session's ``session.json`` crop."""
    if session.events_path is None:
        raise DataError(
            f"{session.path}: no events.csv to build prototypes from; give `prototypes` or `ckpt`"
        )
    item = VideoInput(session.video, session.events_path, f"{session.animal}_{session.session}", session.meta)
    return build_from_videos([item], crop=crop, hog=hog, mode=mode, k=k, device=device, chunk_size=batch_size)


__all__ = ["build_from_videos", "hog_input_size", "iter_hog", "session_prototypes"]
