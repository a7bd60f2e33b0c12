"""Aligning the camera's and the imaging's clocks: the frames they share after a lag, and a linear
fit of one clock onto the other from paired events (:mod:`mouseemo.data.sync` for the clocks)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mouseemo.data.sync import check_times, nearest_indices
from mouseemo.errors import DataError

__all__ = ["ClockAlignment", "align_clocks", "fit_clock"]


@dataclass
class ClockAlignment:
    """Camera and imaging frames that share time, after the lag.

    Attributes:
        overlap_start, overlap_end: shared interval in camera-clock seconds.
        cam_idx: camera frames inside the overlap ``(num_cam,)``.
        neural_idx: imaging frames inside the overlap (after shifting by the lag) ``(num_neural,)``.
        cam_for_neural: nearest camera frame for each of ``neural_idx`` ``(num_neural,)``.
        t_neural: shifted times of ``neural_idx`` ``(num_neural,)``.
        lag_s: lag added to the imaging times before matching.
    """

    overlap_start: float
    overlap_end: float
    cam_idx: np.ndarray
    neural_idx: np.ndarray
    cam_for_neural: np.ndarray
    t_neural: np.ndarray
    lag_s: float

    @property
    def duration_s(self) -> float:
        return self.overlap_end - self.overlap_start

    @property
    def num_cam(self) -> int:
        return len(self.cam_idx)

    @property
    def num_neural(self) -> int:
        return len(self.neural_idx)

    def to_dict(self) -> dict:
        """Summary for logs and JSON (no index arrays)."""
        return {
            "overlap_start": float(self.overlap_start),
            "overlap_end": float(self.overlap_end),
            "duration_s": float(self.duration_s),
            "num_cam": self.num_cam,
            "num_neural": self.num_neural,
            "lag_s": float(self.lag_s),
        }


def align_clocks(
    t_cam: np.ndarray, t_neural: np.ndarray, lag_s: float = 0.0, min_overlap_s: float = 1.0
) -> ClockAlignment:
    """Restrict camera and imaging frames to their shared time span and pair them.

    Imaging times are shifted by ``+lag_s`` first (a positive lag pairs each imaging frame with a later
    camera frame). Both clocks must already be in the same units and origin (camera seconds); use
    :func:`fit_clock` to map one onto the other first if they are not.

    Args:
        t_cam: camera frame times, sorted.
        t_neural: imaging frame times, sorted.
        lag_s: lag added to ``t_neural``.
        min_overlap_s: shortest acceptable overlap.

    Returns:
        :class:`ClockAlignment`.

    Raises:
        DataError: the clocks overlap for less than ``min_overlap_s``.

    Shape:
        t_cam: ``(T_cam,)``; t_neural: ``(T_neural,)``.
    """
    t_cam = check_times(t_cam, "t_cam", min_len=1)
    t_neural = check_times(t_neural, "t_neural", min_len=1)
    t_shift = t_neural + float(lag_s)
    start = max(t_cam[0], t_shift[0])
    end = min(t_cam[-1], t_shift[-1])
    if end - start < min_overlap_s:
        lag_note = f" after a lag of {lag_s:+.3f} s" if lag_s else ""
        raise DataError(
            "camera and imaging timestamps do not overlap "
            f"(camera {t_cam[0]:.1f}–{t_cam[-1]:.1f} s, imaging {t_shift[0]:.1f}–{t_shift[-1]:.1f} s{lag_note}; "
            f"need at least {min_overlap_s} s in common)"
        )
    cam_idx = np.flatnonzero((t_cam >= start) & (t_cam <= end))
    neural_idx = np.flatnonzero((t_shift >= start) & (t_shift <= end))
    cam_for_neural = nearest_indices(t_shift[neural_idx], t_cam)
    return ClockAlignment(
        overlap_start=float(start),
        overlap_end=float(end),
        cam_idx=cam_idx,
        neural_idx=neural_idx,
        cam_for_neural=cam_for_neural,
        t_neural=t_shift[neural_idx],
        lag_s=float(lag_s),
    )


def fit_clock(t_a: np.ndarray, t_b: np.ndarray, max_residual_s: float | None = 0.05) -> tuple[float, float]:
    """Least-squares linear map ``t_b ≈ slope * t_a + offset`` from paired event times.

    Typical use: the same TTL pulses or LED flashes seen on the imaging clock (``t_a``) and on the
    camera clock (``t_b``); ``slope`` absorbs clock drift, ``offset`` the start difference.

    Args:
        t_a: event times on clock A.
        t_b: the same events on clock B.
        max_residual_s: largest accepted absolute residual; None skips the check.

    Returns:
        ``(slope, offset)``.

    Raises:
        DataError: fewer than 2 pairs, unequal lengths, NaN, all ``t_a`` equal, a non-positive slope
            (events paired in the wrong order), or a residual above ``max_residual_s`` (names the event).

    Shape:
        t_a, t_b: ``(E,)``.

    Example:
        >>> slope, offset = fit_clock(np.array([0.0, 10.0, 20.0]), np.array([5.0, 15.01, 25.02]))
        >>> round(slope, 6), round(offset, 6)
        (1.001, 5.0)
    """
    t_a = np.asarray(t_a, dtype=np.float64)
    t_b = np.asarray(t_b, dtype=np.float64)
    if t_a.ndim != 1 or t_b.ndim != 1 or len(t_a) != len(t_b):
        raise DataError(f"fit_clock: need two 1-D arrays of equal length, got {t_a.shape} and {t_b.shape}")
    if len(t_a) < 2:
        raise DataError(f"fit_clock: need at least 2 paired events, got {len(t_a)}")
    if not (np.all(np.isfinite(t_a)) and np.all(np.isfinite(t_b))):
        raise DataError("fit_clock: event times contain NaN or inf")
    # Centre before fitting: absolute clock values (e.g. Unix seconds) would otherwise cost precision.
    ma, mb = t_a.mean(), t_b.mean()
    da, db = t_a - ma, t_b - mb
    var = float(np.dot(da, da))
    if var == 0:
        raise DataError("fit_clock: all events have the same time on clock A")
    slope = float(np.dot(da, db) / var)
    offset = float(mb - slope * ma)
    if slope <= 0:
        raise DataError(f"fit_clock: slope {slope:.4g} is not positive; are the events paired in order?")
    if max_residual_s is not None:
        resid = t_b - (slope * t_a + offset)
        worst = int(np.argmax(np.abs(resid)))
        if abs(resid[worst]) > max_residual_s:
            raise DataError(
                f"fit_clock: event {worst} is {resid[worst] * 1e3:+.1f} ms off the linear fit "
                f"(limit {max_residual_s * 1e3:.1f} ms); missing or extra events?"
            )
    return slope, offset
