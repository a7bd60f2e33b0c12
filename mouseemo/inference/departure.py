"""A label-free readout per stimulus: how far the face departs from its own pre-stimulus face.

No prototype is involved: for each stimulus window ``[onset, onset + duration)`` the baseline face is
the mean HOG of the frames in ``[onset - baseline_s, onset)``; every frame's departure is
``1 - r`` (Pearson ``r`` between its HOG and that baseline HOG); the readout is the mean departure
inside the window minus the mean departure of the baseline frames themselves (so a restless
baseline does not count as a response). A stronger stimulus moves the face further from where it
was a moment before, whatever the animal looks like.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mouseemo.data.events import Events, read_events
from mouseemo.data.video import VideoReader
from mouseemo.errors import ConfigError
from mouseemo.inference.inputs import VideoInput
from mouseemo.inference.prototypes import iter_hog
from mouseemo.models.prototypes_io import hog_params


def departure_readout(
    features: np.ndarray, times: np.ndarray, onset: float, duration: float, baseline_s: float = 2.0
) -> dict[str, float | None]:
    """Departure of the frames of one window from the mean face of the ``baseline_s`` before it.

    Shape:
        features ``(T, D)``, times ``(T,)`` -> ``{"departure", "departure_peak", "baseline_frames"}``
        (``None`` values when the baseline or the window holds no frame).
    """
    if baseline_s <= 0:
        raise ConfigError(f"baseline_s must be > 0; got {baseline_s}")
    feats = np.asarray(features, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    base = (times >= onset - baseline_s) & (times < onset)
    win = (times >= onset) & (times < onset + duration)
    out: dict[str, float | None] = {
        "departure": None,
        "departure_peak": None,
        "baseline_frames": int(base.sum()),
    }
    if not base.any() or not win.any():
        return out
    ref = feats[base].mean(0)
    x = feats[base | win]
    xc = x - x.mean(1, keepdims=True)
    rc = ref - ref.mean()
    r = (xc @ rc) / np.maximum(np.linalg.norm(xc, axis=1) * np.linalg.norm(rc), 1e-12)
    d = 1.0 - r
    is_win = win[base | win]
    out["departure"] = float(d[is_win].mean() - d[~is_win].mean())
    out["departure_peak"] = float(d[is_win].max() - d[~is_win].mean())
    return out


def video_departures(
    item: VideoInput,
    hog: dict | None = None,
    crop=None,
    resize: tuple[int, int] | None = None,
    baseline_s: float = 2.0,
    labels: Sequence[str] | None = None,
    device: torch.device | str = "cpu",
) -> list[dict]:
    """:func:`departure_readout` for every stimulus (non-neutral event) of one video.

    Returns:
        One dict per stimulus, in onset order: ``onset``, ``duration``, ``label``, ``value`` and the
        readout.
    """
    if item.events is None:
        raise ConfigError(f"{item.video}: departures need an events file")
    events: Events = read_events(item.events)
    params = hog_params(**(hog or {}))
    feats, times = [], []
    with VideoReader(item.video, crop=crop) as vr:
        clock = vr.clock()
        for start, _, h in iter_hog(vr, params, resize, torch.device(device)):
            feats.append(h.cpu().numpy())
            times.append(clock.at(start, len(h)))
    f, t = np.concatenate(feats), np.concatenate(times)
    out = []
    for i, entry in events.stimuli():
        if labels is not None and entry["label"] not in labels:
            continue
        entry.update(departure_readout(f, t, events.onset[i], events.duration[i], baseline_s))
        out.append(entry)
    return out


class DepartureCollector:
    """Keeps the HOG of the frames near each stimulus while a video streams, for
    :func:`departure_readout` at the end (``mouseemo predict``'s per-stimulus ``departure``).

    Only frames in some ``[onset - baseline_s, onset + duration)`` are kept, so memory is bounded by
    the stimuli, not by the video's length.

    Args:
        events: the video's events; neutral events are not stimuli.
        baseline_s: seconds before each onset that make the trial's own pre-stimulus face.
    """

    def __init__(self, events: Events, baseline_s: float = 2.0) -> None:
        if baseline_s <= 0:
            raise ConfigError(f"baseline_s must be > 0; got {baseline_s}")
        stim = [i for i in range(len(events)) if events.label[i] != "neutral"]
        self.baseline_s = float(baseline_s)
        self.onset = events.onset[stim]
        self.duration = events.duration[stim]
        self._feats: list[np.ndarray] = []
        self._times: list[np.ndarray] = []

    def wanted(self, times: np.ndarray) -> np.ndarray:
        """Bool mask of the ``times`` that fall near a stimulus."""
        t = np.asarray(times, dtype=np.float64)[:, None]
        return ((t >= self.onset - self.baseline_s) & (t < self.onset + self.duration)).any(1)

    def update(self, times: np.ndarray, features: np.ndarray) -> None:
        """Keep ``features`` ``(b, D)`` of frames at ``times`` ``(b,)`` (already :meth:`wanted`)."""
        if len(times):
            self._feats.append(np.asarray(features, dtype=np.float32))
            self._times.append(np.asarray(times, dtype=np.float64))

    def readout(self, onset: float, duration: float) -> dict[str, float | None]:
        if not self._times:
            return departure_readout(np.zeros((0, 1)), np.zeros(0), onset, duration, self.baseline_s)
        return departure_readout(
            np.concatenate(self._feats), np.concatenate(self._times), onset, duration, self.baseline_s
        )
