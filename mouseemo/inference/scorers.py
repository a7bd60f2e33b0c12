"""Per-frame scores of new frames: prototypes (HOG + Pearson similarity) or a trained checkpoint.

A scorer says how frames must be prepared (crop, then resize: the model's own), checks that a video
fits it, and turns batches of uint8 gray frames on the device into ``(b, K)`` scores, a label and a
confidence per frame. Scores are ``similarity_<name>`` (prototype models) or ``prob_<name>``
(classifiers), as in the prediction CSV.

* :class:`~mouseemo.inference.prototype_scorer.PrototypeScorer`: a prototypes file
  (``mouseemo prototypes``): HOG of each frame on the device, Pearson similarity to each prototype,
  label by the most similar (with ``margin`` toward neutral).
* :class:`CheckpointScorer`: any trained mouseemo LightningModule
  (:func:`mouseemo.models.checkpoint.load_model`). Frames are cropped and resized with
  :func:`mouseemo.data.video.resize_frames`, as the training frame cache did, then go through the
  module's ``on_after_batch_transfer`` and ``predict_step`` (softmax probabilities for classifiers,
  similarities for HOG-prototype models). A module with an integer ``clip_length`` > 1 is temporal:
  it reads ``batch["frames"]`` ``(B, T, 1, H, W)``, a window of ``T`` frames ending at each frame
  (the first frame repeated before the start).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from mouseemo.data.events import Events
from mouseemo.data.video import (
    Crop,
    reference_indices,
    resize_frames,
    session_reference,
    video_reference,
)
from mouseemo.errors import ConfigError, DataError
from mouseemo.models.components.prototypes import classify

log = logging.getLogger(__name__)

#: Default confidence thresholds of the low-confidence QC check, per score kind.
DEFAULT_MIN_CONFIDENCE = {"prob": 0.5, "similarity": 0.01}

#: ``score(frames)``; checkpoints comparing each frame with its own reference (trial-locked models)
#: also take ``score(frames, reference)``, uint8 ``(b, H, W)`` references of the frames.
ScoreFn = Callable[..., torch.Tensor]


def confidence_of(scores: np.ndarray, prefix: str) -> np.ndarray:
    """Per-frame confidence of ``(b, K)`` scores: the top probability (``prefix == "prob"``, or one
    score), else the gap between the best and second-best similarity."""
    s = np.asarray(scores)
    if prefix == "prob" or s.shape[1] < 2:
        return s.max(axis=1)
    top = np.sort(s, axis=1)
    return top[:, -1] - top[:, -2]


class Scorer:
    """What :func:`mouseemo.inference.pipeline.predict_video` needs from a model.

    Attributes:
        kind: ``"prototypes"`` or ``"checkpoint"``.
        path: the prototypes or checkpoint file.
        names: class / prototype names, in score column order.
        prefix: score column prefix (``similarity`` or ``prob``).
        crop: the crop the model was built with (``None``: full frame).
        resize: ``(H, W)`` frames are resized to after cropping, or ``None``.
        device: where scores are computed.
        margin: for similarities, best-minus-neutral below this stays neutral.
    """

    kind = ""

    def __init__(self, path: str | Path, names, prefix, crop, resize, device, margin: float = 0.0) -> None:
        self.path = Path(path)
        self.names = list(names)
        self.prefix = prefix
        self.crop: Crop | None = crop
        self.resize: tuple[int, int] | None = resize
        self.device = torch.device(device)
        self.margin = float(margin)

    @property
    def columns(self) -> list[str]:
        return [f"{self.prefix}_{n}" for n in self.names]

    @property
    def confidence_measure(self) -> str:
        if self.prefix == "prob":
            return "highest class probability"
        return "best minus second-best similarity"

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """``(H, W)`` of the frames the model sees, for cropped frames of ``height`` x ``width``."""
        return self.resize if self.resize is not None else (height, width)

    def prepare(self, frames: np.ndarray) -> np.ndarray:
        """Cropped uint8 ``(b, H, W)`` frames -> the model's input size (runs on the decoding thread)."""
        return resize_frames(frames, self.resize)

    def check(self, height: int, width: int, source: str) -> None:
        """Raise :class:`ConfigError` when cropped ``height`` x ``width`` frames of ``source`` do not fit."""
        raise NotImplementedError

    def begin_video(
        self, vr, num_frames: int | None = None, *, clock=None, events: Events | None = None, trials=None
    ) -> None:
        """Called once per video before :meth:`stream`, with its open reader (cropped as scored), its
        frame count when known, its clock, its events and its trials (a
        :class:`~mouseemo.data.trials.Trials`). Models that need the whole session (a session
        reference frame, the video's own neutral, each trial's pre-stimulus face) read it here. Per-video state is kept on the scorer: use
        :meth:`for_video` when one scorer serves several videos at once."""

    def for_video(
        self, vr, num_frames: int | None = None, *, clock=None, events: Events | None = None, trials=None
    ) -> Scorer:
        """A copy of this scorer prepared for one video (:meth:`begin_video`), so that videos scored
        in parallel threads never see each other's reference or neutral. Its :attr:`notes` hold
        warnings for that video's summary."""
        video_scorer = copy.copy(self)
        video_scorer.notes = []
        video_scorer.begin_video(vr, num_frames, clock=clock, events=events, trials=trials)
        return video_scorer

    #: warnings about the current video (set by :meth:`for_video`)
    notes: list[str] = []

    @property
    def needs_reference(self) -> bool:
        """Whether scoring needs frames of the session first (a session reference, its own neutral)."""
        return False

    def begin_frames(self, frames: np.ndarray, source: str = "given frames") -> None:
        """Like :meth:`begin_video`, from cropped uint8 ``(T, H, W)`` frames of the session held in
        memory (``mouseemo live``: its first seconds, or a reference file) instead of a reader: the
        session reference or own neutral is taken from these frames."""

    def for_frames(self, frames: np.ndarray, source: str = "given frames") -> Scorer:
        """A copy of this scorer prepared from frames in memory (:meth:`begin_frames`)."""
        frames = np.asarray(frames)
        if frames.ndim == 2:
            frames = frames[None]
        if frames.ndim != 3 or frames.dtype != np.uint8 or len(frames) == 0:
            raise DataError(
                f"{source}: expected uint8 frames (T, H, W) or one frame (H, W); got "
                f"{frames.dtype} {tuple(frames.shape)}"
            )
        scorer = copy.copy(self)
        scorer.notes = []
        scorer.begin_frames(frames, source)
        return scorer

    def stream(self) -> ScoreFn:
        """A scoring function for one video: uint8 ``(b, H, W)`` on the device -> float32 ``(b, K)``.

        Temporal models keep the last frames of the previous call, so call it on consecutive chunks.
        """
        raise NotImplementedError

    def labels(self, scores: torch.Tensor) -> np.ndarray:
        """Index into :attr:`names` of each frame's label, ``(b,)`` int64."""
        if self.prefix == "similarity":
            return classify(scores, self.names, margin=self.margin).cpu().numpy()
        return scores.argmax(dim=1).cpu().numpy()

    def confidence(self, scores: torch.Tensor) -> np.ndarray:
        """Per-frame confidence, ``(b,)`` float32 (see :attr:`confidence_measure`)."""
        return confidence_of(scores.float().cpu().numpy(), self.prefix).astype(np.float32)

    def describe(self) -> dict:
        """The model's entry in the summary JSON."""
        return {
            "kind": self.kind,
            "path": str(self.path),
            "score_prefix": self.prefix,
            "names": self.names,
            "crop": list(self.crop) if self.crop else None,
            "resize": list(self.resize) if self.resize else None,
            "margin": self.margin if self.prefix == "similarity" else None,
        }


class CheckpointScorer(Scorer):
    """Scores from a trained module rebuilt from its checkpoint (:func:`load_model`)."""

    kind = "checkpoint"

    def __init__(self, loaded, device, margin: float | None = None) -> None:
        module = loaded.module
        if margin is None:  # the model's own margin (HOG-prototype modules have one)
            margin = float(dict(getattr(module, "hparams", {})).get("margin") or 0.0)
        super().__init__(
            loaded.path,
            loaded.score_names,
            loaded.score_prefix,
            loaded.crop,
            loaded.image_size,
            device,
            margin,
        )
        self.module = module
        self.classes = loaded.classes
        clip = getattr(module, "clip_length", 1)
        self.clip_length = int(clip) if isinstance(clip, int) and not isinstance(clip, bool) else 1
        self.clip_step = max(1, int(getattr(loaded, "clip_step", 1) or 1))  # frames between clip members
        self.target = type(module).__module__ + "." + type(module).__qualname__
        self.reference_kind = getattr(loaded, "reference", None)
        self.reference_frames = int(getattr(loaded, "reference_frames", 300) or 300)
        self._reference: torch.Tensor | None = None  # (1, 1, H, W) uint8 of the current video
        import pytorch_lightning as pl  # only checkpoints need it (seconds to import)

        # a module's own predict_step gives its scores (softmax for classifiers); Lightning's default
        # would hand it the whole batch dict
        self._has_predict_step = type(module).predict_step is not pl.LightningModule.predict_step

    @classmethod
    def load(cls, path: str | Path, device, margin: float | None = None) -> CheckpointScorer:
        """The scorer of checkpoint ``path``: a :class:`~mouseemo.inference.trial_scorer.TrialScorer`
        for trial-locked models (``reference=trial``)."""
        from mouseemo.models.checkpoint import load_model  # Lightning takes seconds to import

        loaded = load_model(path, device)
        if loaded.reference == "trial" and cls is CheckpointScorer:
            from mouseemo.inference.trial_scorer import TrialScorer

            return TrialScorer(loaded, device, margin)
        return cls(loaded, device, margin)

    def begin_video(
        self, vr, num_frames: int | None = None, *, clock=None, events: Events | None = None, trials=None
    ) -> None:
        """Session-reference models: the reference of this video, as in training (one extra forward
        decoding pass, up to the last sampled frame)."""
        self._reference = None
        if self.reference_kind is None:
            return
        self._check_reference_kind()
        ref = video_reference(vr, self.resize, self.reference_frames, num_frames)
        self._reference = torch.from_numpy(ref)[None, None].to(self.device)

    def _check_reference_kind(self) -> None:
        if self.reference_kind != "median":
            raise ConfigError(
                f"this checkpoint compares frames with a {self.reference_kind!r} reference, which "
                "needs the stimulus onsets: score it with `mouseemo predict` or `mouseemo live`"
            )

    @property
    def needs_reference(self) -> bool:
        return self.reference_kind is not None

    def begin_frames(self, frames: np.ndarray, source: str = "given frames") -> None:
        """Session-reference models: the reference is the median of up to ``reference_frames`` of
        ``frames`` spread evenly (resized first), as :meth:`begin_video` takes it from a video."""
        self._reference = None
        if self.reference_kind is None:
            return
        self._check_reference_kind()
        pick = frames[reference_indices(len(frames), self.reference_frames)]
        ref = session_reference(resize_frames(pick, self.resize), self.reference_frames)
        self._reference = torch.from_numpy(ref)[None, None].to(self.device)

    def _scoring_module(self):
        """:func:`~mouseemo.inference.fast_module.inference_copy` of ``self.module`` (made once per module)."""
        fast = getattr(self, "_fast", None)
        if fast is None or fast[0] is not self.module:
            from mouseemo.inference.fast_module import inference_copy

            fast = self._fast = (self.module, inference_copy(self.module, self.device))
        return fast[1]

    def _run(self, frames: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 ``(B, H, W)`` (or ``(B, T, H, W)`` for temporal models) -> scores ``(B, K)``; each
        frame against ``reference`` ``(B, H, W)`` when given, else the video's session reference."""
        key = "frames" if self.clip_length > 1 else "image"
        batch = {key: frames.unsqueeze(-3)}
        if reference is not None:
            batch["reference"] = reference.unsqueeze(1)
        elif self.reference_kind is not None:
            ref = self._reference
            if ref is None or ref.shape[-2:] != frames.shape[-2:]:  # the size probe of check()
                ref = torch.full((1, 1, *frames.shape[-2:]), 128, dtype=torch.uint8, device=frames.device)
            batch["reference"] = ref.expand(len(frames), -1, -1, -1)
        module = self._scoring_module()
        with torch.inference_mode():
            batch = module.on_after_batch_transfer(batch, 0)
            if self._has_predict_step:
                out = module.predict_step(batch, 0)
            else:
                out = module(batch[key])
                if self.prefix == "prob":
                    out = out.float().softmax(dim=1)
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.float()

    def check(self, height: int, width: int, source: str) -> None:
        size = self.input_size(height, width)
        fit = getattr(self.module, "_check_frame_size", None)  # HOG modules know their frame size
        if fit is not None:
            try:
                fit(size)
            except ConfigError as err:
                raise ConfigError(f"{self.path} does not fit {source}: {err}") from None
        shape = (1, self.clip_length, *size) if self.clip_length > 1 else (1, *size)
        probe = torch.full(shape, 128, dtype=torch.uint8, device=self.device)
        try:
            out = self._run(probe)
        except ConfigError:
            raise
        except Exception as err:  # noqa: BLE001 - any failure means the input does not fit the model
            raise ConfigError(
                f"{self.path} cannot score {size[1]}x{size[0]} (w x h) frames of {source}: "
                f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            ) from None
        if out.ndim != 2 or out.shape[1] != len(self.names):
            raise DataError(
                f"{self.path}: the model gives scores of shape {tuple(out.shape)}, expected (B, {len(self.names)})"
            )

    def stream(self) -> ScoreFn:
        t, step = self.clip_length, self.clip_step
        if t <= 1:
            return self._run
        span = (t - 1) * step + 1  # frames from the clip's first member to its last
        history: list[torch.Tensor] = []

        def score(x: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
            past = history[0] if history else x[:1].expand(span - 1, *x.shape[1:])
            full = torch.cat([past, x])  # (span - 1 + b, H, W)
            # (b, T, H, W): frames i - (T-1) step, ..., i - step, i
            windows = full.unfold(0, span, 1)[..., ::step].permute(0, 3, 1, 2)
            history[:] = [full[-(span - 1) :].clone()]
            return self._run(windows.contiguous(), reference)

        return score

    def describe(self) -> dict:
        return {
            **super().describe(),
            "module": self.target,
            "classes": self.classes,
            "clip_length": self.clip_length,
            "reference": (
                {"kind": self.reference_kind, "frames": self.reference_frames}
                if self.reference_kind
                else None
            ),
        }


def load_scorer(
    prototypes: str | Path | None,
    ckpt: str | Path | None,
    device,
    margin: float | None = None,
    neutral: str = "prototypes",
    neutral_until_s: float | None = None,
) -> Scorer:
    """The scorer for ``--prototypes`` or ``--ckpt`` (exactly one); ``neutral`` and
    ``neutral_until_s`` apply to prototypes only (see
    :class:`~mouseemo.inference.prototype_scorer.PrototypeScorer`)."""
    if (prototypes is None) == (ckpt is None):
        raise ConfigError("give exactly one of `prototypes` and `ckpt`")
    if prototypes is not None:
        from mouseemo.inference.prototype_scorer import PrototypeScorer

        return PrototypeScorer.load(prototypes, device, margin, neutral, neutral_until_s)
    if neutral != "prototypes" or neutral_until_s is not None:
        raise ConfigError(
            "`neutral` and `neutral_until_s` apply to `prototypes`; a checkpoint compares frames with the "
            "reference it was trained with"
        )
    return CheckpointScorer.load(ckpt, device, margin)


def __getattr__(name: str):
    # ``scorers.PrototypeScorer``, the path tests and older code use: the class lives in
    # mouseemo.inference.prototype_scorer, which imports this module
    if name in ("NEUTRAL_SOURCES", "PrototypeScorer"):
        from mouseemo.inference import prototype_scorer

        return getattr(prototype_scorer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_MIN_CONFIDENCE",
    "CheckpointScorer",
    "Scorer",
    "load_scorer",
]
