"""Items of recorded sessions: a session's cached frames, and datasets indexed by ``(session, frame)``.

:class:`FrameDataset` serves the items of :class:`~mouseemo.data.face_datamodule.FaceFramesDataModule`
(a frame or a clip, its reference, its label, time and place); :class:`SessionFramesDataset` is the
random access over frame caches that the neural datamodule's windows share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mouseemo.data.session import Session


@dataclass
class SessionFrames:
    """One session's cached frames, per-frame labels and times."""

    session: Session
    cache_path: Path
    labels: np.ndarray  # (T,) int64, IGNORE_INDEX where unlabelled
    times: np.ndarray  # (T,) float64 camera seconds
    reference: np.ndarray | None = None  # (R, H, W) uint8 reference frames, or None
    reference_index: np.ndarray | None = None  # (T,) int64: each frame's row of ``reference``

    @property
    def name(self) -> str:
        return self.session.name


def segment_starts(mask: np.ndarray) -> np.ndarray:
    """For every frame, the first frame of the run of ``True`` it belongs to (-1 outside the mask).

    Shape:
        ``(T,)`` bool -> ``(T,)`` int64.
    """
    mask = np.asarray(mask, dtype=bool)
    idx = np.arange(len(mask))
    is_start = mask & ~np.concatenate([[False], mask[:-1]])
    starts = np.maximum.accumulate(np.where(is_start, idx, -1)) if len(mask) else idx
    return np.where(mask, starts, -1).astype(np.int64)


class SessionFramesDataset(Dataset):
    """Items indexed by ``(session, frame)`` rows over sessions' frame caches.

    The memmaps are opened lazily (in each worker) and are not pickled, so worker processes share
    nothing. Subclasses set ``index`` and call :meth:`_init_sessions`.
    """

    index: np.ndarray

    def _init_sessions(self, sessions: Sequence[SessionFrames]) -> None:
        self.cache_paths = [str(s.cache_path) for s in sessions]
        self.names = [(s.session.animal, s.session.session) for s in sessions]
        self.times = [s.times for s in sessions]
        self._frames: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.index)

    def _open(self) -> list[np.ndarray]:
        if self._frames is None:
            self._frames = [np.load(p, mmap_mode="r") for p in self.cache_paths]
        return self._frames

    def _where(self, s: int, f: int) -> dict:
        """The item's frame number and its session's animal and name."""
        animal, session = self.names[s]
        return {"frame": torch.tensor(f, dtype=torch.long), "animal": animal, "session": session}

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_frames"] = None
        return state


class FrameDataset(SessionFramesDataset):
    """Random access to cached frames; memmaps are opened lazily so worker processes share nothing.

    With ``clip_length`` T > 1 an item is the clip of T frames (``clip_step`` apart) ending at the
    indexed frame, under the key ``frames`` ``(T, 1, H, W)``; frames before ``starts`` (the first frame
    of the item's segment) are replaced by that first frame.
    """

    def __init__(
        self,
        sessions: Sequence[SessionFrames],
        index: np.ndarray,
        labels: np.ndarray,
        clip_length: int = 1,
        clip_step: int = 1,
        starts: np.ndarray | None = None,
    ) -> None:
        refs = [s.reference for s in sessions]
        self.references = (
            [torch.from_numpy(np.ascontiguousarray(r))[:, None] for r in refs]  # (R, 1, H, W) each
            if refs and all(r is not None for r in refs)
            else None
        )
        self.reference_index = [
            s.reference_index if s.reference_index is not None else np.zeros(len(s.times), dtype=np.int64)
            for s in sessions
        ]
        self._init_sessions(sessions)
        self.index = index  # (M, 2): session, frame
        self.labels = labels  # (M,) labels used for training (possibly shuffled)
        self.clip_length = int(clip_length)
        self.clip_step = int(clip_step)
        self.starts = starts if starts is not None else index[:, 1].copy()  # (M,) segment starts

    def __getitem__(self, i: int) -> dict:
        s, f = (int(v) for v in self.index[i])
        if self.clip_length > 1:
            offsets = self.clip_step * np.arange(self.clip_length - 1, -1, -1)
            frames = np.maximum(f - offsets, int(self.starts[i]))
            pixels = {"frames": torch.from_numpy(np.array(self._open()[s][frames], dtype=np.uint8))[:, None]}
        else:
            pixels = {"image": torch.from_numpy(np.array(self._open()[s][f], dtype=np.uint8))[None]}
        if self.references is not None:
            pixels["reference"] = self.references[s][int(self.reference_index[s][f])]
        return {
            **pixels,
            "label": torch.tensor(int(self.labels[i]), dtype=torch.long),
            "t_cam": torch.tensor(float(self.times[s][f]), dtype=torch.float64),
            **self._where(s, f),
        }
