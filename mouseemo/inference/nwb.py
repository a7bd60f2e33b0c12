"""NWB export of one video's predictions (needs the optional ``pynwb``: ``pip install 'mouseemo[nwb]'``).

The file holds a processing module ``behavior`` with

* one ``TimeSeries`` per class, named like the CSV columns (``prob_pain``, ``similarity_neutral``),
  on the camera clock (the timestamps are stored once and shared);
* a ``TimeIntervals`` table ``emotion_states``: every run of frames with the same label, with
  ``start_time``, ``stop_time`` (the start of the next run's first frame, or the last frame's time
  plus one frame period) and ``label``.

``session_start_time`` comes from ``session.json`` (``session_start_time`` or ``start_time``, ISO
8601) when present, else the video file's modification time (UTC).
"""

from __future__ import annotations

import datetime as _dt
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mouseemo import __version__
from mouseemo.errors import ConfigError


def nwb_available() -> bool:
    try:
        import pynwb  # noqa: F401
    except ImportError:
        return False
    return True


def require_nwb() -> None:
    if not nwb_available():
        raise ConfigError("`nwb` output needs pynwb, which is not installed: pip install 'mouseemo[nwb]'")


def label_runs(labels: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` frame ranges of constant label.

    Example:
        >>> label_runs(np.array([0, 0, 2, 2, 2, 0]))
        [(0, 2), (2, 5), (5, 6)]
    """
    labels = np.asarray(labels)
    if len(labels) == 0:
        return []
    cut = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    edges = np.concatenate([[0], cut, [len(labels)]])
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def _start_time(video: Path, meta: dict | None) -> _dt.datetime:
    for key in ("session_start_time", "start_time"):
        value = (meta or {}).get(key)
        if value:
            try:
                t = _dt.datetime.fromisoformat(str(value))
            except ValueError:
                continue
            return t if t.tzinfo else t.replace(tzinfo=_dt.timezone.utc)
    return _dt.datetime.fromtimestamp(video.stat().st_mtime, tz=_dt.timezone.utc)


def write_predictions_nwb(
    path: str | os.PathLike,
    video: str | os.PathLike,
    times: np.ndarray,
    scores: np.ndarray,
    names: Sequence[str],
    prefix: str,
    labels: np.ndarray,
    fps: float,
    description: str = "",
    meta: dict | None = None,
) -> Path:
    """Write the predictions of one video to an NWB file (see the module docstring for the layout).

    Args:
        path: the ``.nwb`` file to write.
        video: the source video (named in the file; its mtime may give the start time).
        times: ``(T,)`` frame times in seconds.
        scores: ``(T, K)`` per-class scores.
        names: the ``K`` class names.
        prefix: ``prob`` or ``similarity``.
        labels: ``(T,)`` label index per frame.
        fps: frame rate (the last run's stop time).
        description: what produced the scores.
        meta: the session's ``session.json`` (optional: subject, start time).
    """
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.epoch import TimeIntervals
    from pynwb.file import Subject

    video = Path(video)
    meta = meta or {}
    nwb = NWBFile(
        session_description=f"facial expression states predicted by mouseemo from {video.name}",
        identifier=str(uuid.uuid4()),
        session_start_time=_start_time(video, meta),
        session_id=str(meta["session"]) if meta.get("session") else None,
        notes=f"written by mouseemo {__version__} (mouseemo predict --nwb)",
        subject=Subject(subject_id=str(meta["animal"]), species="Mus musculus")
        if meta.get("animal")
        else None,
    )
    module = nwb.create_processing_module(
        name="behavior", description=description or "mouseemo predictions per video frame"
    )
    times = np.asarray(times, dtype=np.float64)
    unit = "probability" if prefix == "prob" else "Pearson r"
    first = None
    for j, name in enumerate(names):
        ts = TimeSeries(
            name=f"{prefix}_{name}",
            data=np.asarray(scores[:, j], dtype=np.float32),
            unit=unit,
            timestamps=times if first is None else first,
            description=f"{prefix} of {name!r} per frame of {video}",
        )
        first = first or ts
        module.add(ts)
    states = TimeIntervals(name="emotion_states", description="runs of frames with the same predicted label")
    states.add_column(name="label", description="predicted emotion state")
    for a, b in label_runs(labels):
        stop = float(times[b]) if b < len(times) else float(times[-1] + 1.0 / fps)
        states.add_row(start_time=float(times[a]), stop_time=stop, label=names[int(labels[a])])
    module.add(states)
    path = Path(path)
    with NWBHDF5IO(str(path), mode="w") as io:
        io.write(nwb)
    return path
