"""Activity traces: the one output every imaging reader returns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mouseemo.errors import ConfigError, DataError

SIGNALS = ("dff", "F", "corrected", "spks")


class NeuronsByFrames:
    """``num_neurons`` and ``num_frames`` of a recording whose ``(N, T)`` activity array is the
    attribute named by ``_activity``."""

    _activity = "traces"

    @property
    def num_neurons(self) -> int:
        return int(getattr(self, self._activity).shape[0])

    @property
    def num_frames(self) -> int:
        return int(getattr(self, self._activity).shape[1])


@dataclass
class ActivityTraces(NeuronsByFrames):
    """Activity of ``N`` neurons over ``T`` imaging frames, whatever the source format.

    Attributes:
        traces: activity, float32 ``(N, T)``.
        fs: imaging frame rate in Hz, or None when the source does not record it.
        neuron_ids: index of each row in the source (Suite2p ROI index, CaImAn component), ``(N,)``.
        signal: what ``traces`` holds (``"dff"``, ``"F"``, ``"corrected"``, ``"spks"``).
        source: the file or folder it was read from.
        t: per-frame times in seconds (float64 ``(T,)``) when a timestamp file was found, else None.

    Shape:
        traces: ``(N, T)``; neuron_ids: ``(N,)``; t: ``(T,)``.
    """

    traces: np.ndarray
    fs: float | None
    neuron_ids: np.ndarray
    signal: str = "F"
    source: str = ""
    t: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.traces = np.asarray(self.traces, dtype=np.float32)
        if self.traces.ndim != 2:
            raise DataError(f"{self.source or 'activity'}: traces must be (N, T), got {self.traces.shape}")
        self.neuron_ids = np.asarray(self.neuron_ids, dtype=np.int64)
        if self.neuron_ids.shape != (self.traces.shape[0],):
            raise DataError(
                f"{self.source or 'activity'}: {len(self.neuron_ids)} neuron ids for "
                f"{self.traces.shape[0]} traces"
            )
        if self.t is not None:
            self.t = np.asarray(self.t, dtype=np.float64)
            if self.t.shape != (self.traces.shape[1],):
                raise DataError(
                    f"{self.source or 'activity'}: {self.t.shape[0]} timestamps for "
                    f"{self.traces.shape[1]} imaging frames"
                )

    def times(self) -> np.ndarray:
        """Frame times in seconds: the stored timestamps, else ``arange(T) / fs``.

        Raises:
            ConfigError: neither timestamps nor a frame rate are known.
        """
        if self.t is not None:
            return self.t
        if self.fs is None:
            raise ConfigError(
                f"{self.source or 'activity'}: no timestamps and no frame rate; pass fs= when loading"
            )
        return np.arange(self.num_frames, dtype=np.float64) / self.fs
