"""Per-frame scores from a prototypes file: HOG + Pearson similarity (``mouseemo predict --prototypes``).

:class:`PrototypeScorer` computes the HOG of each frame on the device (:func:`mouseemo.ops.hog.hog`),
its Pearson similarity to each prototype, and labels it by the most similar (with ``margin`` toward
neutral). With ``neutral="own"`` the prototypes are carried onto each video's own neutral face by the
same rules as training (:func:`mouseemo.models.components.prototypes.carry_to_neutral`, baseline frames
from :meth:`mouseemo.data.events.Events.baseline_mask`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from mouseemo.data.events import Events
from mouseemo.data.session_neutral import baseline_indices
from mouseemo.data.video import reference_indices, video_reference
from mouseemo.errors import ConfigError, DataError
from mouseemo.inference.scorers import ScoreFn, Scorer
from mouseemo.models.components.prototypes import carry_to_neutral
from mouseemo.models.prototypes_io import Prototypes
from mouseemo.ops import hog
from mouseemo.ops.similarity import pearson_similarity

log = logging.getLogger(__name__)

#: Where a prototype scorer's neutral comes from: the prototypes file's own neutral prototype, or
#: each video's own neutral face (see :class:`PrototypeScorer`).
NEUTRAL_SOURCES = ("prototypes", "own")


class PrototypeScorer(Scorer):
    """Similarity of each frame's HOG to prototypes from a ``.npz`` (:class:`Prototypes`)."""

    kind = "prototypes"

    def __init__(
        self,
        protos: Prototypes,
        path: str | Path,
        device,
        margin: float = 0.0,
        neutral: str = "prototypes",
        neutral_until_s: float | None = None,
        neutral_frames: int = 300,
    ) -> None:
        super().__init__(path, protos.names, "similarity", protos.crop, protos.resize, device, margin)
        if neutral not in NEUTRAL_SOURCES:
            raise ConfigError(f"neutral must be one of {list(NEUTRAL_SOURCES)}; got {neutral!r}")
        if neutral == "own" and "neutral" not in protos.names:
            raise ConfigError(
                f"{path}: scoring against each video's own neutral needs a 'neutral' prototype; "
                f"this file has {protos.names}"
            )
        if neutral_until_s is not None and not (np.isfinite(neutral_until_s) and neutral_until_s > 0):
            raise ConfigError(
                f"the neutral period must be a positive number of seconds; got {neutral_until_s}"
            )
        if int(neutral_frames) < 1:
            raise ConfigError(f"neutral_frames must be >= 1; got {neutral_frames}")
        self.protos = protos
        self.neutral_source = neutral
        self.neutral_until_s = None if neutral_until_s is None else float(neutral_until_s)
        self.neutral_frames = int(neutral_frames)
        self._base = torch.as_tensor(protos.matrix, device=self.device)
        self._matrix = self._base
        #: how the current video's neutral was found (summary JSON)
        self.neutral_info: dict = {"source": "prototypes file"}

    @classmethod
    def load(
        cls,
        path: str | Path,
        device,
        margin: float | None = None,
        neutral: str = "prototypes",
        neutral_until_s: float | None = None,
    ) -> PrototypeScorer:
        return cls(
            Prototypes.load(path), path, device, 0.0 if margin is None else margin, neutral, neutral_until_s
        )

    def begin_video(
        self, vr, num_frames: int | None = None, *, clock=None, events: Events | None = None, trials=None
    ) -> None:
        """With ``neutral="own"``: the video's own neutral face replaces the file's neutral prototype,
        and every emotion prototype is carried over as its change from the file's neutral
        (``prototype - file neutral + video neutral``), as the paper reads a new animal's expressions
        against its own neutral face.

        The video's neutral is the mean HOG of up to ``neutral_frames`` evenly spread baseline frames:
        the frames before ``neutral_until_s`` when given, else the baseline of its events (``neutral``
        windows, or the frames before the first stimulus). A video with neither falls back to the HOG
        of its median frame (the session reference), with a warning in :attr:`notes`.
        """
        self._matrix = self._base
        if self.neutral_source != "own":
            self.neutral_info = {"source": "prototypes file"}
            return
        n = num_frames if num_frames is not None else (vr.frame_count_hint or vr.num_frames)
        n = int(n)
        if n <= 0:
            raise DataError(f"no frames in {vr.path} to take its own neutral from")
        if clock is None:
            clock = vr.clock()
        times = clock.at(0, n) if clock.times is None or len(clock.times) >= n else clock.times
        mask = None
        if self.neutral_until_s is not None:
            mask, source = times < self.neutral_until_s, f"frames before {self.neutral_until_s:g} s"
        elif events is not None:
            mask, source = events.baseline_mask(times), "baseline frames of its events"
        if mask is not None and mask.any():
            idx = baseline_indices(mask, self.neutral_frames)
            frames = vr.read_frames(idx)  # one decoding pass, as for a session reference
            if len(frames) == 0:
                raise DataError(f"no frames decoded from {vr.path} for its own neutral")
            own = self._mean_hog(frames)
            self.neutral_info = {"source": source, "frames": len(frames)}
        else:
            why = (
                f"has no frame before {self.neutral_until_s:g} s"
                if self.neutral_until_s is not None
                else ("has no events" if events is None else "has no baseline frame in its events")
            )
            msg = (
                f"{vr.path} {why}: its own neutral is the HOG of its median frame (session reference) "
                "instead of baseline frames"
            )
            log.warning(msg)
            self.notes = [*self.notes, msg]
            ref = video_reference(vr, self.resize, self.neutral_frames, n)
            own = self.hog(torch.from_numpy(ref)[None].to(self.device))[0].double()
            self.neutral_info = {"source": "median frame (no baseline)", "frames": 1}
        self._set_own_neutral(own)

    @property
    def needs_reference(self) -> bool:
        return self.neutral_source == "own"

    def begin_frames(self, frames: np.ndarray, source: str = "given frames") -> None:
        """With ``neutral="own"``: the neutral is the mean HOG of up to ``neutral_frames`` of
        ``frames`` spread evenly, as :meth:`begin_video` takes it from a video's baseline frames."""
        self._matrix = self._base
        if self.neutral_source != "own":
            self.neutral_info = {"source": "prototypes file"}
            return
        frames = frames[reference_indices(len(frames), self.neutral_frames)]
        self._set_own_neutral(self._mean_hog(frames))
        self.neutral_info = {"source": source, "frames": len(frames)}

    def _mean_hog(self, frames: np.ndarray) -> torch.Tensor:
        """Mean HOG (float64, on the device) of cropped uint8 frames, prepared in chunks of 64."""
        feats = []
        for i in range(0, len(frames), 64):
            x = torch.from_numpy(np.ascontiguousarray(self.prepare(frames[i : i + 64]))).to(self.device)
            feats.append(self.hog(x).double())
        return torch.cat(feats).mean(dim=0)

    def _set_own_neutral(self, own: torch.Tensor) -> None:
        self._matrix = carry_to_neutral(self._base, self.names, own).float()

    def check(self, height: int, width: int, source: str) -> None:
        self.protos.check_compatible(self.protos.hog, self.input_size(height, width), source=source)

    @property
    def matrix(self) -> torch.Tensor:
        """The ``(K, D)`` prototype matrix on the device."""
        return self._matrix

    def hog(self, x: torch.Tensor) -> torch.Tensor:
        """HOG ``(b, D)`` float32 of uint8 frames ``(b, H, W)``, with the prototypes' parameters."""

        return hog(x, **self.protos.hog).float()

    def stream(self) -> ScoreFn:
        matrix = self._matrix

        def score(x: torch.Tensor) -> torch.Tensor:
            return pearson_similarity(self.hog(x), matrix)

        return score

    def describe(self) -> dict:
        return {
            **super().describe(),
            "hog": self.protos.hog,
            "frame_size": list(self.protos.frame_size),
            "neutral": dict(self.neutral_info),
        }


__all__ = ["NEUTRAL_SOURCES", "PrototypeScorer"]
