"""Clocks: timestamp files, frame-drop checks, matching and resampling between camera and imaging
(aligning two clocks: :mod:`mouseemo.data.clock_alignment`).

Every clock is an explicit float64 array of seconds (``t_cam`` for the face camera, ``t_neural`` for
imaging frames), and every conversion between clocks goes through one function here. A lag between
the two is a parameter (``lag_s``), never an implicit offset.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mouseemo.errors import ConfigError, DataError
from mouseemo.utils.io import read_user_text

__all__ = [
    "FrameReport",
    "detect_frame_problems",
    "nearest_indices",
    "read_timestamps",
    "resample",
]

TIMESTAMP_HEADER = ("frame", "time_s")


def read_timestamps(
    path: str | os.PathLike, strict: bool = True, return_frames: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Read a ``frame,time_s`` CSV (one row per recorded frame).

    Args:
        path: CSV with the header ``frame,time_s`` (extra columns after these are ignored).
        strict: times must increase strictly; with False, equal consecutive times (duplicated frames,
            which :func:`detect_frame_problems` reports) are accepted but decreasing ones are not.
        return_frames: also return the frame column.

    Returns:
        Times in seconds, float64 ``(T,)``; with ``return_frames``, ``(times, frames)`` with frames int64.

    Raises:
        DataError: missing file, wrong header, no rows, non-numeric or NaN/inf values, frame numbers
            not strictly increasing, times not increasing. The message names the file and the first bad
            line (1-based, header = line 1).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: timestamp file does not exist")
    frames: list[int] = []
    times: list[float] = []
    text = read_user_text(path)  # UTF-8 with or without Excel's BOM; anything else is refused
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path}: empty file; expected the header 'frame,time_s'")
        names = tuple(h.strip().lower() for h in header[:2])
        if names != TIMESTAMP_HEADER:
            raise DataError(f"{path}: header is {','.join(header)!r}; expected 'frame,time_s'")
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) < 2:
                raise DataError(f"{path}: line {line} has {len(row)} column(s); expected frame,time_s")
            try:
                frame_f = float(row[0])
                time_f = float(row[1])
            except ValueError as exc:
                raise DataError(f"{path}: line {line} is not numeric ({','.join(row)!r})") from exc
            if not np.isfinite(time_f) or not np.isfinite(frame_f):
                raise DataError(f"{path}: line {line} has a NaN or infinite value ({','.join(row)!r})")
            if frame_f != int(frame_f):
                raise DataError(f"{path}: line {line} frame {row[0]!r} is not an integer")
            frame = int(frame_f)
            if frames and frame <= frames[-1]:
                raise DataError(
                    f"{path}: line {line} frame {frame} does not increase (previous {frames[-1]})"
                )
            if times and (time_f < times[-1] or (strict and time_f == times[-1])):
                raise DataError(
                    f"{path}: line {line} time {time_f} s does not increase (previous {times[-1]} s)"
                )
            frames.append(frame)
            times.append(time_f)
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV ({exc})") from exc
    if not times:
        raise DataError(f"{path}: no timestamp rows after the header")
    t = np.asarray(times, dtype=np.float64)
    if return_frames:
        return t, np.asarray(frames, dtype=np.int64)
    return t


def check_times(t: np.ndarray, name: str, min_len: int = 1) -> np.ndarray:
    t = np.asarray(t, dtype=np.float64)
    if t.ndim != 1:
        raise DataError(f"{name} must be 1-D, got shape {t.shape}")
    if len(t) < min_len:
        raise DataError(f"{name} needs at least {min_len} timestamps, got {len(t)}")
    if not np.all(np.isfinite(t)):
        raise DataError(f"{name} contains NaN or inf (first at index {int(np.argmax(~np.isfinite(t)))})")
    if len(t) > 1 and np.any(np.diff(t) < 0):
        raise DataError(
            f"{name} decreases at index {int(np.argmax(np.diff(t) < 0)) + 1}; timestamps must be sorted"
        )
    return t


# --------------------------------------------------------------------------------------------------
# Frame problems
# --------------------------------------------------------------------------------------------------


@dataclass
class FrameReport:
    """What the timestamps say about acquisition.

    Attributes:
        nominal_fps: frame rate used for the checks (given, or 1 / median interval).
        num_frames: timestamps seen.
        num_dropped: estimated frames missing, ``round(gap * fps) - 1`` summed over long gaps.
        dropped_after: index of the frame before each long gap.
        num_duplicated: intervals shorter than ``(1 - tol) / fps`` (zero included).
        duplicated_at: index of the second frame of each short interval.
        jitter_ms: standard deviation of the regular intervals, in milliseconds.
    """

    nominal_fps: float
    num_frames: int
    num_dropped: int
    dropped_after: np.ndarray
    num_duplicated: int
    duplicated_at: np.ndarray
    jitter_ms: float

    @property
    def ok(self) -> bool:
        """True when no frame was dropped or duplicated."""
        return self.num_dropped == 0 and self.num_duplicated == 0

    def to_dict(self) -> dict:
        """JSON-ready dict (arrays as lists of ints)."""
        d = asdict(self)
        d["dropped_after"] = [int(i) for i in self.dropped_after]
        d["duplicated_at"] = [int(i) for i in self.duplicated_at]
        d["nominal_fps"] = float(self.nominal_fps)
        d["jitter_ms"] = float(self.jitter_ms)
        return d


def detect_frame_problems(t: np.ndarray, fps: float | None = None, tol: float = 0.5) -> FrameReport:
    """Find dropped and duplicated frames from per-frame timestamps.

    An interval longer than ``(1 + tol) / fps`` is a gap with ``round(gap * fps) - 1`` frames missing
    (at least 1); one shorter than ``(1 - tol) / fps`` is a duplicate.

    Args:
        t: frame times in seconds, non-decreasing.
        fps: nominal frame rate; None estimates it as 1 / median of the positive intervals.
        tol: relative tolerance on the interval.

    Returns:
        :class:`FrameReport`.

    Shape:
        t: ``(T,)``.

    Example:
        >>> t = np.delete(np.arange(10) / 20.0, [4, 5])  # frames 4 and 5 lost at 20 Hz
        >>> detect_frame_problems(t).num_dropped
        2
    """
    t = check_times(t, "timestamps", min_len=2)
    if not 0 < tol < 1:
        raise ConfigError(f"tol must be in (0, 1), got {tol}")
    dt = np.diff(t)
    if fps is None:
        positive = dt[dt > 0]
        if positive.size == 0:
            raise DataError("timestamps: all equal; cannot estimate a frame rate")
        fps = 1.0 / float(np.median(positive))
    elif fps <= 0 or not np.isfinite(fps):
        raise ConfigError(f"fps must be a positive number, got {fps}")
    period = 1.0 / fps
    long_gap = dt > (1.0 + tol) * period
    short_gap = dt < (1.0 - tol) * period
    missing = np.maximum(np.round(dt[long_gap] * fps).astype(np.int64) - 1, 1)
    regular = dt[~long_gap & ~short_gap]
    return FrameReport(
        nominal_fps=float(fps),
        num_frames=len(t),
        num_dropped=int(missing.sum()),
        dropped_after=np.flatnonzero(long_gap),
        num_duplicated=int(short_gap.sum()),
        duplicated_at=np.flatnonzero(short_gap) + 1,
        jitter_ms=float(np.std(regular) * 1e3) if regular.size else 0.0,
    )


# --------------------------------------------------------------------------------------------------
# Matching and resampling
# --------------------------------------------------------------------------------------------------


def nearest_indices(t_query: np.ndarray, t_ref: np.ndarray, max_dist: float | None = None) -> np.ndarray:
    """Index of the nearest ``t_ref`` sample for each query time.

    Ties go to the earlier sample. Queries farther than ``max_dist`` seconds from every reference
    sample, and NaN queries, get -1.

    Args:
        t_query: times to look up (any order).
        t_ref: sorted reference times.
        max_dist: largest accepted distance in seconds; None for no limit.

    Returns:
        int64 indices into ``t_ref``.

    Shape:
        t_query: ``(Q,)``; t_ref: ``(R,)``; output: ``(Q,)``.

    Example:
        >>> nearest_indices(np.array([0.04, 0.05, 0.26]), np.array([0.0, 0.1, 0.2]), max_dist=0.05)
        array([ 0,  0, -1])
    """
    t_ref = check_times(t_ref, "t_ref", min_len=1)
    q = np.asarray(t_query, dtype=np.float64)
    flat = q.reshape(-1)
    right = np.clip(np.searchsorted(t_ref, flat, side="left"), 0, len(t_ref) - 1)
    left = np.clip(right - 1, 0, len(t_ref) - 1)
    d_left = np.abs(flat - t_ref[left])
    d_right = np.abs(t_ref[right] - flat)
    idx = np.where(d_left <= d_right, left, right).astype(np.int64)
    dist = np.minimum(d_left, d_right)
    bad = ~np.isfinite(flat)
    if max_dist is not None:
        bad |= dist > max_dist
    idx[bad] = -1
    return idx.reshape(q.shape)


def resample(
    values: np.ndarray,
    t_src: np.ndarray,
    t_dst: np.ndarray,
    method: str = "linear",
    axis: int = -1,
    fill: float = np.nan,
    bins: str = "center",
) -> np.ndarray:
    """Move a signal sampled at ``t_src`` onto the clock ``t_dst``.

    Methods:
        - ``"linear"``: linear interpolation between the two neighbouring source samples.
        - ``"nearest"``: the nearest source sample (ties to the earlier).
        - ``"mean"``: mean of the source samples in each destination bin, ignoring NaN (for
          downsampling, e.g. a 20 Hz camera onto a 15 Hz imaging clock). With ``bins="center"`` bin
          ``i`` spans the midpoints around ``t_dst[i]``; with ``bins="start"`` it spans
          ``[t_dst[i], t_dst[i+1])``, for timestamps that mark the start of an exposure or scan. The
          outer edges extend by the neighbouring interval. Empty bins get ``fill``.

    Destination times outside ``[t_src[0], t_src[-1]]`` get ``fill`` for every method.

    Args:
        values: signal with time along ``axis``.
        t_src: sorted source times ``(T_src,)``.
        t_dst: sorted destination times ``(T_dst,)``.
        method: ``"linear"``, ``"nearest"`` or ``"mean"``.
        axis: time axis of ``values``.
        fill: value outside the source range.
        bins: ``"center"`` or ``"start"`` (``"mean"`` only).

    Returns:
        Array like ``values`` with ``T_dst`` samples on ``axis``; float32 for float32 input, else float64.

    Shape:
        values: ``(..., T_src, ...)``; output: ``(..., T_dst, ...)``.

    Example:
        >>> resample(np.array([0.0, 10.0]), np.array([0.0, 1.0]), np.array([0.25, 2.0]))
        array([2.5, nan])
    """
    t_src = check_times(t_src, "t_src", min_len=1)
    t_dst = check_times(t_dst, "t_dst", min_len=0)
    values = np.asarray(values)
    if values.ndim == 0:
        raise DataError("resample: values must have a time axis")
    v = np.moveaxis(values, axis, -1)
    if v.shape[-1] != len(t_src):
        raise DataError(
            f"resample: values have {v.shape[-1]} samples on axis {axis} but t_src has {len(t_src)}"
        )
    out_dtype = np.float32 if values.dtype == np.float32 else np.float64
    num_dst = len(t_dst)
    inside = (t_dst >= t_src[0]) & (t_dst <= t_src[-1])

    if method == "linear":
        vf = v.astype(np.float64)
        if len(t_src) == 1:
            out = np.repeat(vf[..., :1], num_dst, axis=-1)
        else:
            j = np.clip(np.searchsorted(t_src, t_dst, side="right") - 1, 0, len(t_src) - 2)
            span = t_src[j + 1] - t_src[j]
            # A zero-length interval (repeated timestamp) takes its first sample instead of dividing by 0.
            w = np.divide(t_dst - t_src[j], span, out=np.zeros_like(span), where=span > 0)
            w = np.clip(w, 0.0, 1.0)
            out = vf[..., j] * (1.0 - w) + vf[..., j + 1] * w
    elif method == "nearest":
        idx = nearest_indices(t_dst, t_src)
        out = v[..., np.maximum(idx, 0)].astype(np.float64)
    elif method == "mean":
        edges = _bin_edges(t_dst, bins)
        start = np.searchsorted(t_src, edges[:-1], side="left")
        stop = np.searchsorted(t_src, edges[1:], side="left")
        vf = v.astype(np.float64)
        finite = np.isfinite(vf)
        zero = np.zeros(vf.shape[:-1] + (1,))
        csum = np.concatenate([zero, np.cumsum(np.where(finite, vf, 0.0), axis=-1)], axis=-1)
        ccount = np.concatenate([zero, np.cumsum(finite, axis=-1)], axis=-1)
        total = csum[..., stop] - csum[..., start]
        count = ccount[..., stop] - ccount[..., start]
        out = np.divide(total, count, out=np.full_like(total, np.nan), where=count > 0)
        out = np.where(count > 0, out, fill)
    else:
        raise ConfigError(f"resample: unknown method {method!r}; use 'linear', 'nearest' or 'mean'")

    out = np.where(inside, out, fill) if num_dst else out
    return np.moveaxis(out.astype(out_dtype), -1, axis)


def _bin_edges(t_dst: np.ndarray, bins: str) -> np.ndarray:
    if len(t_dst) == 0:
        return np.zeros(1)
    if len(t_dst) == 1:
        raise DataError("resample: method='mean' needs at least 2 destination times to define bins")
    dt = np.diff(t_dst)
    if bins == "center":
        mid = t_dst[:-1] + dt / 2
        return np.concatenate([[t_dst[0] - dt[0] / 2], mid, [t_dst[-1] + dt[-1] / 2]])
    if bins == "start":
        return np.concatenate([t_dst, [t_dst[-1] + dt[-1]]])
    raise ConfigError(f"resample: unknown bins {bins!r}; use 'center' or 'start'")
