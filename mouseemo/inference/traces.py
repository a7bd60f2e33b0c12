"""Per-frame face traces of a session on the camera clock, one column per emotion
(``mouseemo correlates``' face side).

* no model: prototypes built from the session's own ``events.csv`` (the paper's way), then every
  frame's HOG scored against them: ``trace="intensity"`` unmixes each frame into the prototypical
  expressions (:func:`mouseemo.ops.similarity.expression_intensity`), ``"similarity"`` is the paper's
  Pearson similarity to each prototype;
* a prototypes file: the same with those prototypes;
* a checkpoint: a trained model's per-frame scores, as ``mouseemo predict`` computes them;
* a CSV: any traces with a ``time_s`` column (e.g. ``mouseemo predict`` output).
"""

from __future__ import annotations

import csv
import io
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mouseemo.data.crop import WHOLE_FRAME
from mouseemo.data.session import Session, resolve_crop
from mouseemo.data.video import VideoReader
from mouseemo.errors import ConfigError, DataError
from mouseemo.inference.prototype_scorer import PrototypeScorer
from mouseemo.inference.prototypes import session_prototypes
from mouseemo.inference.rateable import COLUMNS as RATEABLE_COLUMNS
from mouseemo.inference.scorers import CheckpointScorer, ScoreFn, Scorer
from mouseemo.inference.scoring import stream_scores
from mouseemo.models.checkpoint import load_model
from mouseemo.models.prototypes_io import Prototypes
from mouseemo.ops.similarity import expression_intensity
from mouseemo.utils.io import read_user_text

TRACE_KINDS = ("intensity", "similarity")


@dataclass
class FaceTraces:
    """Per-frame face traces on the camera clock.

    Attributes:
        t: ``(T,)`` frame times (camera-clock seconds).
        scores: ``(T, K)`` one column per name.
        names: trace names (emotions).
        kind: ``intensity``, ``similarity``, ``prob`` or ``csv``.
        info: provenance written to ``summary.json``.
    """

    t: np.ndarray
    scores: np.ndarray
    names: list[str]
    kind: str
    info: dict = field(default_factory=dict)

    def select(self, include_neutral: bool) -> FaceTraces:
        keep = [j for j, n in enumerate(self.names) if include_neutral or n != "neutral"]
        if not keep:
            raise DataError(f"no emotion traces to correlate (only {self.names})")
        return FaceTraces(self.t, self.scores[:, keep], [self.names[j] for j in keep], self.kind, self.info)


def _score_session(
    session: Session, scorer: Scorer, crop, batch_size: int, source: str, score: ScoreFn | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(t (T,), scores (T, K) float64)`` of every frame of the session's video
    (:func:`~mouseemo.inference.scoring.stream_scores`); its timestamps must have a row per frame."""
    out, times = [], []
    with VideoReader(session.video, crop=crop) as vr:
        scorer.check(vr.height, vr.width, source=source)
        scorer.begin_video(vr)
        clock = vr.clock(strict=True)
        with closing(stream_scores(vr, scorer, clock, batch_size, score=score)) as chunks:
            for chunk in chunks:
                out.append(chunk.scores.double().cpu().numpy())
                times.append(chunk.times)
        if not out:
            raise DataError(f"no frames decoded from {session.video}")
        clock.all(sum(len(t) for t in times))
    return np.concatenate(times), np.concatenate(out)


def traces_from_prototypes(
    session: Session,
    protos: Prototypes,
    trace: str = "intensity",
    crop=None,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
) -> FaceTraces:
    """Score every frame of the session's video against ``protos``.

    ``trace="intensity"`` unmixes each frame into the non-neutral prototypes (needs a ``neutral``
    prototype); ``"similarity"`` is the Pearson similarity to every prototype.
    """
    if trace not in TRACE_KINDS:
        raise ConfigError(f"`trace` must be one of {list(TRACE_KINDS)}; got {trace!r}")
    if trace == "intensity" and "neutral" not in protos.names:
        raise ConfigError("`trace`=intensity needs a 'neutral' prototype; use `trace`=similarity")
    scorer = PrototypeScorer(protos, "", device)
    crop = resolve_crop(crop, protos.crop, session.meta, model="the prototypes", source=str(session.path))
    score = None
    if trace == "intensity":
        neutral = protos.names.index("neutral")

        def score(x: torch.Tensor) -> torch.Tensor:
            return expression_intensity(scorer.hog(x), scorer.matrix, neutral_index=neutral)

    t, scores = _score_session(session, scorer, crop, batch_size, f"{session.video} with crop {crop}", score)
    names = list(protos.names) if trace == "similarity" else [n for n in protos.names if n != "neutral"]
    return FaceTraces(
        t, scores, names, trace,
        {"crop": list(crop) if crop else None, "hog": protos.hog, "prototypes": list(protos.names)},
    )  # fmt: skip


def traces_from_checkpoint(
    session: Session,
    ckpt: str | Path,
    crop=None,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
) -> FaceTraces:
    """A trained model's per-frame scores, computed as ``mouseemo predict`` does
    (:class:`~mouseemo.inference.scorers.CheckpointScorer`): frames cropped and resized as in
    training, the session reference for models that use one, clips for temporal models, then the
    module's own scores (class probabilities or similarities)."""

    device = torch.device(device)
    loaded = load_model(ckpt, device=device)
    if getattr(loaded.module, "is_joint_encoder", False) or not loaded.score_names:
        raise ConfigError(
            f"{ckpt} is not an expression model (no per-class scores); correlates needs a classifier or "
            "prototype checkpoint (a joint encoder is exported with `mouseemo embed`)"
        )
    scorer = CheckpointScorer(loaded, device)
    crop = resolve_crop(crop, loaded.crop, session.meta, model=str(ckpt), source=str(session.path))
    source = f"{session.video} (crop {list(crop) if crop else None})"
    t, scores = _score_session(session, scorer, crop, batch_size, source)
    if scores.shape[1] != len(loaded.score_names):
        raise DataError(
            f"{ckpt}: the model gives {scores.shape[1]} scores for {len(loaded.score_names)} names"
        )
    return FaceTraces(
        t, scores, list(loaded.score_names), loaded.score_prefix,
        {"ckpt": str(ckpt), "crop": list(crop) if crop else None,
         "image_size": list(loaded.image_size) if loaded.image_size else None},
    )  # fmt: skip


def traces_from_csv(path: str | Path) -> FaceTraces:
    """Traces from a CSV with a ``time_s`` column and numeric columns (``similarity_``/``prob_``
    prefixes are dropped; ``frame``, ``label`` and the rateable columns of newer prediction CSVs are ignored)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"traces file not found: {path}")
    try:
        reader = csv.reader(io.StringIO(read_user_text(path), newline=""))
        header = next(reader, None)
        rows = [r for r in reader if r and any(c.strip() for c in r)]
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV ({exc})") from None
    if not header or "time_s" not in header:
        raise DataError(f"{path}: needs a header with a time_s column and one column per trace")
    cols = [j for j, h in enumerate(header) if h not in ("time_s", "frame", "label", *RATEABLE_COLUMNS)]
    if not cols:
        raise DataError(f"{path}: no trace columns besides time_s")
    ti = header.index("time_s")
    try:
        t = np.array([float(r[ti]) for r in rows])
        scores = np.array([[float(r[j]) for j in cols] for r in rows], dtype=np.float64)
    except (ValueError, IndexError) as err:
        raise DataError(f"{path}: a value is missing or not a number ({err})") from None
    if len(t) < 2:
        raise DataError(f"{path}: fewer than 2 rows")
    if not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
        raise DataError(f"{path}: time_s must be finite and strictly increasing")
    bad = ~np.isfinite(scores)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        raise DataError(f"{path}: NaN or inf in column {header[cols[j]]!r} at line {i + 2}")
    names = [header[j].removeprefix("similarity_").removeprefix("prob_") for j in cols]
    return FaceTraces(t, scores, names, "csv", {"traces": str(path)})


def face_traces(
    folder: str | Path,
    traces: str | Path | None = None,
    ckpt: str | Path | None = None,
    prototypes: str | Path | None = None,
    trace: str = "intensity",
    crop=None,
    pixels_per_cell: int = 32,
    n_frames: int = 10,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
) -> FaceTraces:
    """The face traces of the session in ``folder``, from at most one of ``traces`` (a CSV),
    ``ckpt`` or ``prototypes``; with none, prototypes are built from the session's ``events.csv``
    (HOG cells of ``pixels_per_cell``, ``n_frames`` least-neutral frames per prototype).

    ``crop`` overrides the session's and the model's crop (``"none"``: the whole frame; see
    :func:`~mouseemo.data.session.resolve_crop`).
    """
    if traces:
        return traces_from_csv(traces)
    session = Session.open(folder)
    if ckpt:
        return traces_from_checkpoint(session, ckpt, crop=crop, device=device, batch_size=batch_size)
    if prototypes:
        protos = Prototypes.load(prototypes)
        info = {"prototypes_file": str(prototypes)}
    else:
        crop = resolve_crop(crop, None, session.meta) or WHOLE_FRAME  # the prototypes' crop, said out
        protos = session_prototypes(
            session, crop=crop, hog={"pixels_per_cell": pixels_per_cell}, k=n_frames,
            device=device, batch_size=batch_size,
        )  # fmt: skip
        info = {"prototypes_file": None, "built_from": str(session.events_path)}
    face = traces_from_prototypes(session, protos, trace, crop=crop, device=device, batch_size=batch_size)
    face.info.update(info)
    return face


__all__ = [
    "TRACE_KINDS",
    "FaceTraces",
    "face_traces",
    "traces_from_checkpoint",
    "traces_from_csv",
    "traces_from_prototypes",
]
