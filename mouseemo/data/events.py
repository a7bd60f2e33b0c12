"""Stimulus events: ``events.csv`` -> per-frame labels and stimulus windows.

The file has a header ``onset,duration,label[,value]`` (seconds on the camera clock). A frame at time
``t`` belongs to an event window when ``onset <= t < onset + duration``.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mouseemo.constants import EMOTIONS
from mouseemo.errors import ConfigError, DataError
from mouseemo.utils.io import read_user_text, write_text_atomic

#: Per-frame label meaning "not in any window; do not train or score on this frame".
IGNORE_INDEX = -1


@dataclass
class Events:
    """Stimulus windows of one session.

    Attributes:
        onset: ``(E,)`` float64 seconds.
        duration: ``(E,)`` float64 seconds, ``>= 0``.
        label: ``E`` label names, each in ``vocabulary``.
        value: ``(E,)`` float64 stimulus detail (concentration, current, ...); NaN when absent.
        vocabulary: the allowed labels, in class-index order.
        source: the file they were read from, for messages.
    """

    onset: np.ndarray
    duration: np.ndarray
    label: list[str]
    value: np.ndarray
    vocabulary: tuple[str, ...] = EMOTIONS
    source: str = ""
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._index = {name: i for i, name in enumerate(self.vocabulary)}

    def __len__(self) -> int:
        return len(self.label)

    @property
    def end(self) -> np.ndarray:
        return self.onset + self.duration

    def windows(self, label: str | None = None) -> list[tuple[float, float]]:
        """``(start, end)`` of every window, or of those with ``label``, in onset order."""
        keep = [i for i in np.argsort(self.onset, kind="stable") if label is None or self.label[i] == label]
        return [(float(self.onset[i]), float(self.end[i])) for i in keep]

    def window_mask(self, times: np.ndarray, label: str | None = None) -> np.ndarray:
        """Boolean ``(T,)``: frames at ``times`` that fall inside any window (with ``label``)."""
        times = np.asarray(times, dtype=np.float64)
        mask = np.zeros(times.shape, dtype=bool)
        for start, stop in self.windows(label):
            mask |= (times >= start) & (times < stop)
        return mask

    def window_ids(self, times: np.ndarray, label: str) -> np.ndarray:
        """Int ``(T,)``: which ``label`` window (0, 1, ... in onset order) each frame is in; -1 outside."""
        times = np.asarray(times, dtype=np.float64)
        ids = np.full(times.shape, -1, dtype=np.int64)
        for k, (start, stop) in enumerate(self.windows(label)):
            ids[(times >= start) & (times < stop)] = k
        return ids

    def stimulus_onsets(self, neutral: str = "neutral") -> np.ndarray:
        """Onsets of all non-neutral events, sorted."""
        return np.sort(np.array([o for o, lab in zip(self.onset, self.label) if lab != neutral], dtype=float))

    def stimuli(self, neutral: str = "neutral") -> list[tuple[int, dict]]:
        """The non-``neutral`` events in onset order: ``(row, {"onset", "duration", "label", "value"})``
        with plain floats (``value`` ``None`` when absent)."""
        out = []
        for i in np.argsort(self.onset, kind="stable"):
            if self.label[i] == neutral:
                continue
            entry = {
                "onset": float(self.onset[i]),
                "duration": float(self.duration[i]),
                "label": self.label[i],
                "value": None if np.isnan(self.value[i]) else float(self.value[i]),
            }
            out.append((int(i), entry))
        return out

    def baseline_mask(self, times: np.ndarray, neutral: str = "neutral") -> np.ndarray:
        """Baseline frames: inside ``neutral`` windows when the file has any, else before the first stimulus.

        This is the one rule for a session's neutral baseline: training, ``mouseemo prototypes`` and
        ``mouseemo predict --neutral own`` all use it (see :mod:`mouseemo.data.session_neutral`).
        """
        times = np.asarray(times, dtype=np.float64)
        if neutral in self.label:
            return self.window_mask(times, neutral)
        onsets = self.stimulus_onsets(neutral)
        if len(onsets) == 0:
            return np.ones(times.shape, dtype=bool)
        return times < onsets[0]

    def frame_labels(self, times: np.ndarray, outside: str = "ignore") -> np.ndarray:
        """Class index of each frame from the windows it falls in.

        Args:
            times: ``(T,)`` frame times on the camera clock.
            outside: label for frames in no window: ``"ignore"`` (-1, skipped by training and metrics)
                or a vocabulary name such as ``"neutral"``.

        Later windows win where windows overlap.

        Shape:
            times ``(T,)`` -> ``(T,)`` int64.
        """
        times = np.asarray(times, dtype=np.float64)
        if outside == "ignore":
            fill = IGNORE_INDEX
        elif outside in self._index:
            fill = self._index[outside]
        else:
            raise ConfigError(f"outside must be 'ignore' or one of {list(self.vocabulary)}; got {outside!r}")
        labels = np.full(times.shape, fill, dtype=np.int64)
        for i in np.argsort(self.onset, kind="stable"):
            inside = (times >= self.onset[i]) & (times < self.end[i])
            labels[inside] = self._index[self.label[i]]
        return labels


def read_events(path: str | os.PathLike, vocabulary: Sequence[str] = EMOTIONS) -> Events:
    """Read and validate an ``events.csv`` file.

    The file is UTF-8, with or without the byte-order mark Excel's "CSV UTF-8" writes.

    Raises:
        DataError: missing file, not UTF-8 text, missing columns, a non-numeric/NaN/negative value, an
            unknown label; the message names the file and the row.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"events file not found: {path}")
    vocabulary = tuple(vocabulary)
    onset: list[float] = []
    duration: list[float] = []
    label: list[str] = []
    value: list[float] = []
    text = read_user_text(path)  # UTF-8 with or without Excel's BOM; anything else is refused
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        fields = [f.strip() for f in (reader.fieldnames or [])]
        missing = [c for c in ("onset", "duration", "label") if c not in fields]
        if missing:
            raise DataError(
                f"{path}: missing column(s) {missing}; expected header onset,duration,label[,value]"
            )
        reader.fieldnames = fields
        for row_no, row in enumerate(reader, start=2):
            try:
                o = float(row["onset"])
                d = float(row["duration"])
            except (TypeError, ValueError):
                raise DataError(f"{path}, line {row_no}: onset/duration must be numbers, got {row}") from None
            if not (math.isfinite(o) and math.isfinite(d)):
                raise DataError(f"{path}, line {row_no}: onset/duration must be finite, got {o}, {d}")
            if d < 0:
                raise DataError(f"{path}, line {row_no}: negative duration {d}")
            lab = (row["label"] or "").strip().lower()
            if lab not in vocabulary:
                raise DataError(
                    f"{path}, line {row_no}: unknown label {lab!r}; expected one of {list(vocabulary)}"
                )
            raw_v = (row.get("value") or "").strip()
            try:
                v = float(raw_v) if raw_v else math.nan
            except ValueError:
                raise DataError(
                    f"{path}, line {row_no}: value must be a number or empty, got {raw_v!r}"
                ) from None
            onset.append(o)
            duration.append(d)
            label.append(lab)
            value.append(v)
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV ({exc})") from None
    return Events(
        onset=np.asarray(onset, dtype=np.float64),
        duration=np.asarray(duration, dtype=np.float64),
        label=label,
        value=np.asarray(value, dtype=np.float64),
        vocabulary=vocabulary,
        source=str(path),
    )


def write_events(path: str | os.PathLike, events: Events) -> None:
    """Write ``events`` as ``onset,duration,label,value`` atomically."""

    lines = ["onset,duration,label,value"]
    for o, d, lab, v in zip(events.onset, events.duration, events.label, events.value):
        lines.append(f"{o:.6f},{d:.6f},{lab},{'' if math.isnan(v) else repr(float(v))}")
    write_text_atomic(path, "\n".join(lines) + "\n")
