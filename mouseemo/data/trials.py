"""``trials.csv``: the trial structure of a session, and each trial's own pre-stimulus face.

A session made of repeated trials (a clip per stimulus, laid end to end, or a continuous recording
with a trigger per trial) may list them in ``trials.csv`` beside ``events.csv``::

    onset,duration,trigger[,current_uA,clip,...]

in seconds on the camera clock: the trial covers ``onset <= t < onset + duration`` and its stimulus
is delivered at ``trigger``. Every trial is listed, sham trials (no stimulus) too, so the trial
structure says nothing about the labels. Extra columns are kept as text.

The frames of a trial before its trigger are that trial's baseline face; :func:`trial_reference_index`
maps every frame to its trial, and :func:`trial_references` gives each trial's median baseline face,
so a model can read the frame as a change from the same animal a moment before the stimulus.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mouseemo.errors import DataError
from mouseemo.utils.io import read_user_text, write_text_atomic

TRIALS_FILE = "trials.csv"
REQUIRED = ("onset", "duration", "trigger")


@dataclass
class Trials:
    """Trials of one session: ``onset``, ``duration``, ``trigger`` (seconds) and extra text columns."""

    onset: np.ndarray
    duration: np.ndarray
    trigger: np.ndarray
    extra: dict[str, list[str]] = field(default_factory=dict)
    source: str = ""

    def __len__(self) -> int:
        return len(self.onset)

    def column(self, name: str) -> list[str]:
        if name not in self.extra:
            raise DataError(f"{self.source or 'trials'}: no column {name!r}")
        return self.extra[name]

    def index_of(self, times: np.ndarray) -> np.ndarray:
        """The trial each time falls in (-1 outside every trial).

        Shape:
            ``(T,)`` float -> ``(T,)`` int64.
        """
        times = np.asarray(times, dtype=np.float64)
        out = np.full(len(times), -1, dtype=np.int64)
        for k in range(len(self)):
            out[(times >= self.onset[k]) & (times < self.onset[k] + self.duration[k])] = k
        return out

    def baseline_mask(self, times: np.ndarray) -> np.ndarray:
        """``(K, T)`` bool: the frames of trial ``k`` before its trigger."""
        times = np.asarray(times, dtype=np.float64)
        return (times[None] >= self.onset[:, None]) & (times[None] < self.trigger[:, None])


def read_trials(path: str | os.PathLike) -> Trials:
    """Read and validate a ``trials.csv`` file.

    Raises:
        DataError: missing file or column, a non-numeric value, a trigger outside its trial.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"trials file not found: {path}")
    reader = csv.DictReader(io.StringIO(read_user_text(path), newline=""))
    fields = [f.strip() for f in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in fields]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; expected header onset,duration,trigger[,...]")
    reader.fieldnames = fields
    num: dict[str, list[float]] = {c: [] for c in REQUIRED}
    extra: dict[str, list[str]] = {c: [] for c in fields if c not in REQUIRED}
    try:
        for row_no, row in enumerate(reader, start=2):
            for c in REQUIRED:
                try:
                    v = float(row[c])
                except (TypeError, ValueError):
                    raise DataError(f"{path}, line {row_no}: {c} must be a number, got {row[c]!r}") from None
                if not math.isfinite(v):
                    raise DataError(f"{path}, line {row_no}: {c} must be finite, got {v}")
                num[c].append(v)
            o, d, t = num["onset"][-1], num["duration"][-1], num["trigger"][-1]
            if d <= 0 or not (o <= t < o + d):
                raise DataError(
                    f"{path}, line {row_no}: needs duration > 0 and onset <= trigger < onset + duration; "
                    f"got onset {o}, duration {d}, trigger {t}"
                )
            for c in extra:
                extra[c].append((row.get(c) or "").strip())
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV ({exc})") from None
    if not num["onset"]:
        raise DataError(f"{path} lists no trials")
    return Trials(*(np.asarray(num[c], dtype=np.float64) for c in REQUIRED), extra=extra, source=str(path))


def session_trials(folder: str | os.PathLike, what: str) -> Trials:
    """The ``trials.csv`` of a session folder, for ``what`` (the setting that needs it, for the error)."""
    path = Path(folder) / TRIALS_FILE
    if not path.is_file():
        raise DataError(
            f"{folder}: {what} needs {TRIALS_FILE} (onset,duration,trigger of every trial, sham trials too)"
        )
    return read_trials(path)


def write_trials(path: str | os.PathLike, trials: Trials) -> None:
    """Write ``trials`` atomically (numbers to the microsecond, extra columns as they are)."""
    cols = list(trials.extra)
    lines = [",".join([*REQUIRED, *cols])]
    for k in range(len(trials)):
        nums = [f"{trials.onset[k]:.6f}", f"{trials.duration[k]:.6f}", f"{trials.trigger[k]:.6f}"]
        lines.append(",".join([*nums, *(trials.extra[c][k] for c in cols)]))
    write_text_atomic(path, "\n".join(lines) + "\n")


def baseline_median(frames: np.ndarray) -> np.ndarray:
    """A trial's pre-stimulus face: the pixel-wise median of its baseline frames, rounded.

    Shape:
        ``(T, H, W)`` uint8 -> ``(H, W)`` uint8.
    """
    return np.median(np.asarray(frames), axis=0).round().astype(np.uint8)


def baseline_seconds(trials: list[Trials]) -> float | None:
    """The pre-stimulus window of a protocol: the median ``trigger - onset`` over ``trials``."""
    spans = [t.trigger - t.onset for t in trials if len(t)]
    return float(np.median(np.concatenate(spans))) if spans else None


def looks_like_trials(path: str | os.PathLike) -> bool:
    """Whether the CSV at ``path`` has a ``trigger`` column (a ``trials.csv``, not an ``events.csv``)."""
    try:
        header = read_user_text(Path(path)).split("\n", 1)[0]
    except (OSError, DataError):
        return False
    return "trigger" in (c.strip() for c in header.split(","))


def trials_from_onsets(onsets, baseline_s: float, source: str = "onsets") -> Trials:
    """Trials from stimulus onsets alone, as training saw them in a ``trials.csv``: trial ``k``
    starts ``baseline_s`` before its onset (its trigger) and lasts until the next trial starts (the
    last one, to the end of the recording).

    Raises:
        DataError: an onset that is not finite, onsets not in increasing order, or two onsets closer
            than ``baseline_s`` (their pre-stimulus windows would overlap the trial before).
    """
    t = np.asarray(onsets, dtype=np.float64).reshape(-1)
    if not np.isfinite(t).all():
        raise DataError(f"{source}: onsets must be finite numbers; got {t[~np.isfinite(t)][:3].tolist()}")
    if len(t) > 1 and (np.diff(t) <= 0).any():
        k = int(np.flatnonzero(np.diff(t) <= 0)[0])
        raise DataError(f"{source}: onsets must increase; {t[k + 1]:g} s follows {t[k]:g} s")
    if len(t) > 1 and (np.diff(t) < baseline_s).any():
        k = int(np.flatnonzero(np.diff(t) < baseline_s)[0])
        raise DataError(
            f"{source}: onsets {t[k]:g} s and {t[k + 1]:g} s are closer than the model's "
            f"{baseline_s:g} s pre-stimulus window"
        )
    start = t - baseline_s
    duration = np.append(np.diff(start), np.inf)
    return Trials(start, duration, t.copy(), source=source)


def trial_references(frames: np.ndarray, times: np.ndarray, trials: Trials) -> tuple[np.ndarray, np.ndarray]:
    """Each trial's pre-stimulus face and the reference row of every frame.

    Row 0 is the session reference (the median of frames spread over the session), used by frames
    outside every trial and by trials without a frame before their trigger; row ``k + 1`` is the
    pixel-wise median of trial ``k``'s frames before its trigger.

    Shape:
        frames ``(T, H, W)`` uint8, times ``(T,)`` -> references ``(K + 1, H, W)`` uint8,
        index ``(T,)`` int64 into them.
    """
    from mouseemo.data.video import session_reference

    times = np.asarray(times, dtype=np.float64)
    if len(frames) != len(times):
        raise DataError(f"{trials.source}: {len(frames)} frames but {len(times)} frame times")
    refs = [session_reference(frames)]
    row = np.zeros(len(trials) + 1, dtype=np.int64)
    base = trials.baseline_mask(times)
    for k in range(len(trials)):
        sel = np.flatnonzero(base[k])
        if len(sel):
            refs.append(baseline_median(frames[sel]))
            row[k + 1] = len(refs) - 1
    index = row[trials.index_of(times) + 1]
    return np.stack(refs), index
