"""A video's camera clock: per-frame times from a timestamps file, or from the frame rate."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mouseemo.data.sync import read_timestamps
from mouseemo.errors import DataError


def read_timestamps_csv(path: str | os.PathLike) -> np.ndarray:
    """Read a ``frame,time_s`` file; defers to :func:`mouseemo.data.sync.read_timestamps`."""

    return read_timestamps(path)


@dataclass
class Clock:
    """A video's camera clock: where frame times come from, and the frame rate.

    Attributes:
        times: per-frame times from the timestamps file (camera-clock seconds), or ``None``: frame
            ``i`` is at ``i / fps``.
        fps: the frame rate: the median of the timestamps' positive steps, else the container's, else
            30 (with a note).
        notes: warnings for the user (an assumed frame rate).
        source: the timestamps file, or ``None``.
        video: the video, for messages.
    """

    times: np.ndarray | None
    fps: float
    notes: list[str] = field(default_factory=list)
    source: Path | None = None
    video: Path | None = None

    def at(self, start: int, count: int) -> np.ndarray:
        """Times of frames ``start .. start + count`` (float64).

        Raises:
            DataError: the timestamps file has fewer rows than that.
        """
        if self.times is None:
            return np.arange(start, start + count, dtype=np.float64) / self.fps
        if start + count > len(self.times):
            raise DataError(
                f"timestamps do not line up with the video: {self.source} has {len(self.times)} "
                f"rows but {self.video} has more frames"
            )
        return self.times[start : start + count]

    def all(self, num_frames: int) -> np.ndarray:
        """Times of all ``num_frames`` frames of the video (a timestamps file must have as many rows).

        Raises:
            DataError: the timestamps file has another number of rows.
        """
        if self.times is not None and len(self.times) != num_frames:
            raise DataError(
                f"timestamps do not line up with the video: {self.source} has {len(self.times)} rows "
                f"but {self.video} decodes to {num_frames} frames"
            )
        return self.at(0, num_frames)
