"""Frames a human would not trust: the per-frame ``rateable`` column of the prediction CSV.

A frame is *unrateable* when a rule from QC fires or, where a learned model exists, when its learned
*unrateable score* is above a threshold:

* **blur**: sharpness below half the video's median (the QC blur check, frame by frame);
* **face**: the frame's thumbnail correlates with the reference face below
  :data:`~mouseemo.inference.qc.DRIFT_R_FLAG` (the face left the crop, a paw or an object covers it);
* **low confidence**: the model's confidence below ``min_confidence`` (rules only: a learned model
  reads the confidence as one of its features instead);
* **learned**: the probability that a frame is not rateable, from logistic models on per-frame
  features (:mod:`mouseemo.inference.rateable_model`: image features against nuisances such as a
  paw over the snout or a blink, the classifier's confidence, entropy and label agreement against
  wrong labels), fitted on frames of animals the classifier was not trained on. It lives beside the
  checkpoint in ``<ckpt>.rateable.json`` (:func:`sidecar_path`), with the threshold that kept 90% of
  its fitting frames; prototype models and checkpoints without it use rules only.

Each frame's *unrateable score* is 1 where a rule fires, else the learned probability (0 without a
model); a frame is rateable when its score is at most the threshold. With abstention the label of
an unrateable frame is left empty (:data:`ABSTAIN`) while its scores stay. The columns are appended
after the score columns, so readers that look columns up by name, or read the first columns by
position, read old and new files alike. Features need the whole video's medians and reference face,
so :class:`RateableFrames` collects them while the video streams and adds the columns when it ends.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from mouseemo.errors import ConfigError, DataError
from mouseemo.inference.qc import BLUR_RATIO, DRIFT_R_FLAG, FrameStats
from mouseemo.inference.rateable_model import FEATURES, RateableModel
from mouseemo.inference.scorers import confidence_of
from mouseemo.utils.io import atomic_path

#: Columns appended to the prediction CSV, after the score columns.
COLUMNS: tuple[str, ...] = ("rateable", "unrateable_score")

#: The label an unrateable frame gets with abstention.
ABSTAIN = ""

#: ``agreement`` looks this many frames to each side.
AGREEMENT_HALF_WINDOW = 5

#: Rules, in the order they are reported.
RULES: tuple[str, ...] = ("blur", "face", "low_confidence")

#: Threshold without a learned model (scores are then 0 or 1, so any value below 1 acts the same).
DEFAULT_THRESHOLD = 0.5

#: Synthetic truth: a frame with a paw over the snout or a closing eye is not rateable.
PAW_OCCLUSION_MIN, BLINK_MIN = 0.3, 0.5

_EPS = 1e-6


def sidecar_path(ckpt: str | Path) -> Path:
    """Where the learned rateable model of checkpoint ``ckpt`` lives: ``<ckpt>.rateable.json``."""
    return Path(f"{ckpt}.rateable.json")


def check_threshold(threshold: float | None) -> float | None:
    """``threshold`` when it is ``None`` or in [0, 1], else ConfigError naming `rateable_threshold`."""
    if threshold is not None and not (np.isfinite(threshold) and 0.0 <= threshold <= 1.0):
        raise ConfigError(f"`rateable_threshold` must be in [0, 1]; got {threshold}")
    return threshold


class MotionCollector:
    """Per-frame motion: mean absolute change of the QC thumbnail from the previous frame's."""

    def __init__(self) -> None:
        self._last: np.ndarray | None = None
        self._motion: list[np.ndarray] = []

    def update(self, stats: FrameStats) -> None:
        thumbs = stats.thumbs
        if not len(thumbs):
            return
        prev = np.concatenate([thumbs[:1] if self._last is None else self._last[None], thumbs[:-1]])
        self._motion.append(np.abs(thumbs - prev).mean(axis=(1, 2)).astype(np.float32))
        self._last = thumbs[-1]

    def motion(self) -> np.ndarray:
        return np.concatenate(self._motion) if self._motion else np.zeros(0, np.float32)


def _log_ratio(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return np.log((x + _EPS) / (float(np.median(x)) + _EPS)) if len(x) else x


def label_agreement(labels: np.ndarray, half: int = AGREEMENT_HALF_WINDOW) -> np.ndarray:
    """Per frame, the fraction of the frames within ``half`` frames of it (itself included) whose
    label is its own: a label that flickers in and out is not one a human would trust."""
    labels = np.asarray(labels, np.int64)
    n = len(labels)
    if not n:
        return np.zeros(0)
    onehot = np.zeros((n + 1, int(labels.max()) + 1))
    onehot[np.arange(1, n + 1), labels] = 1.0
    cum = np.cumsum(onehot, axis=0)
    lo, hi = np.maximum(np.arange(n) - half, 0), np.minimum(np.arange(n) + half + 1, n)
    same = cum[hi, labels] - cum[lo, labels]
    return same / (hi - lo)


def frame_features(
    per_frame: dict[str, np.ndarray], motion: np.ndarray, scores: np.ndarray, prefix: str
) -> dict:
    """The :data:`FEATURES` of every frame of one video.

    Args:
        per_frame: :meth:`mouseemo.inference.qc.StreamingQC.per_frame` of the video.
        motion: :meth:`MotionCollector.motion` of the video.
        scores: ``(n, K)`` scores; probabilities when ``prefix`` is ``prob``.
        prefix: the score kind (``prob`` or ``similarity``).

    Returns:
        ``{name: (n,) float64}``: log sharpness and log motion over their video medians, the face
        correlation, the absolute log brightness over its median, the confidence
        (:func:`confidence_of`), the entropy of the probabilities over its maximum (0 for
        similarities) and the :func:`label_agreement` of the highest score's label.
    """
    scores = np.asarray(scores, np.float64)
    n = len(scores)
    entropy = np.zeros(n)
    if prefix == "prob" and scores.shape[1] > 1:
        p = np.clip(scores, 1e-12, 1.0)
        entropy = -(p * np.log(p)).sum(axis=1) / np.log(scores.shape[1])
    feats = {
        "sharpness": _log_ratio(per_frame["sharpness"]),
        "face_r": np.asarray(per_frame["face_r"], np.float64),
        "brightness": np.abs(_log_ratio(np.asarray(per_frame["brightness"]) + 1.0)),
        "motion": _log_ratio(motion),
        "confidence": confidence_of(scores, prefix),
        "entropy": entropy,
        "agreement": label_agreement(scores.argmax(axis=1)) if n else np.zeros(0),
    }
    bad = [k for k, v in feats.items() if len(v) != n]
    if bad:
        raise DataError(f"rateable features: {bad} have other lengths than the {n} scored frames")
    return feats


def rule_masks(features: dict, min_confidence: float | None) -> dict[str, np.ndarray]:
    """Which frames each rule of :data:`RULES` marks unrateable (``min_confidence`` ``None``: no
    low-confidence rule)."""
    n = len(features["sharpness"])
    low = np.zeros(n, bool) if min_confidence is None else features["confidence"] < min_confidence
    return {
        "blur": features["sharpness"] < np.log(BLUR_RATIO),
        "face": features["face_r"] < DRIFT_R_FLAG,
        "low_confidence": low,
    }


def unrateable_score(features: dict, rules: dict[str, np.ndarray], model: RateableModel | None) -> np.ndarray:
    """1 where a rule fires, else the learned probability (0 without ``model``)."""
    learned = model.score(features) if model is not None else np.zeros(len(features["sharpness"]))
    fired = np.logical_or.reduce(list(rules.values())) if rules else np.zeros(len(learned), bool)
    return np.where(fired, 1.0, learned)


class RateableFrames:
    """Collects one video's rateable features while it streams, then adds :data:`COLUMNS` to its CSV.

    Args:
        model: the learned model (``None``: rules only).
        threshold: frames whose unrateable score is above it are unrateable (``None``: the model's, else
            :data:`DEFAULT_THRESHOLD`).
        abstain: leave the label of unrateable frames empty.
        min_confidence: the low-confidence rule's threshold (used only without a model).
        source: the model file, for the summary.
    """

    COLUMNS = COLUMNS

    def __init__(
        self,
        model: RateableModel | None = None,
        threshold: float | None = None,
        abstain: bool = False,
        min_confidence: float | None = None,
        source: str | None = None,
    ) -> None:
        self.model = model
        default = model.threshold if model is not None else DEFAULT_THRESHOLD
        self.threshold = float(default if check_threshold(threshold) is None else threshold)
        self.abstain = abstain
        self.min_confidence = None if model is not None else min_confidence
        self.source = source
        self.motion = MotionCollector()

    @classmethod
    def for_scorer(cls, scorer, threshold=None, abstain=False, min_confidence=None) -> RateableFrames:
        """With the checkpoint's ``<ckpt>.rateable.json`` when ``scorer`` is a checkpoint that has one."""
        side = sidecar_path(scorer.path)
        model = RateableModel.load(side) if scorer.kind == "checkpoint" and side.is_file() else None
        return cls(model, threshold, abstain, min_confidence, str(side) if model is not None else None)

    def update(self, stats: FrameStats) -> None:
        self.motion.update(stats)

    def score(self, per_frame: dict, scores: np.ndarray, prefix: str) -> tuple[np.ndarray, dict]:
        """``(unrateable score, rule masks)`` of the video's frames."""
        feats = frame_features(per_frame, self.motion.motion(), scores, prefix)
        rules = rule_masks(feats, self.min_confidence)
        return unrateable_score(feats, rules, self.model), rules

    def finish(self, csv_path: Path, per_frame: dict, scores: np.ndarray, prefix: str) -> dict:
        """Add the columns to the finished CSV at ``csv_path`` (rewritten through a temporary file)
        and return the summary's ``rateable`` section."""
        u, rules = self.score(per_frame, scores, prefix)
        ok = u <= self.threshold
        add_columns(csv_path, ok, u, self.abstain)
        n = max(len(u), 1)
        return {
            "columns": list(COLUMNS),
            "model": self.source,
            "threshold": self.threshold,
            "abstain": self.abstain,
            "abstain_label": ABSTAIN if self.abstain else None,
            "rateable_frames": int(ok.sum()),
            "rateable_fraction": float(ok.sum() / n),
            "rules": {
                k: int(v.sum())
                for k, v in rules.items()
                if k != "low_confidence" or self.min_confidence is not None
            },
            "learned_unrateable": int(np.sum(~ok & ~np.logical_or.reduce(list(rules.values())))),
        }


def add_columns(path: Path, rateable: np.ndarray, score: np.ndarray, abstain: bool = False) -> None:
    """Append :data:`COLUMNS` to the prediction CSV at ``path`` (one value per data row), emptying
    the label of unrateable rows with ``abstain``; the file is rewritten through a temporary file."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with (
            open(path, encoding="utf-8", newline="") as src,
            open(tmp, "w", encoding="utf-8", newline="") as dst,
        ):
            header = src.readline().rstrip("\n")
            dst.write(f"{header},{','.join(COLUMNS)}\n")
            i = -1
            for i, line in enumerate(src):
                line = line.rstrip("\n")
                if i >= len(rateable):
                    break
                if abstain and not rateable[i]:
                    frame, t, _, rest = line.split(",", 3)
                    line = f"{frame},{t},{ABSTAIN},{rest}"
                dst.write(f"{line},{int(rateable[i])},{score[i]:.4f}\n")
            if i + 1 != len(rateable):
                raise DataError(f"{path}: {i + 1} rows for {len(rateable)} rateable values")


def prediction_features(summary_path: str | Path, batch_size: int = 256) -> tuple[dict, dict]:
    """The :data:`FEATURES` of a finished prediction, for fitting or checking a :class:`RateableModel`.

    Reads the summary JSON ``mouseemo predict`` wrote, its CSV (scores and labels), and decodes its
    video again with the crop it used for the QC statistics.

    Returns:
        ``(features, table)``; ``table`` holds ``frame`` (int64), ``time_s``, ``label`` (str) and
        ``scores`` ``(n, K)`` as in the CSV.
    """
    from mouseemo.data.video import VideoReader
    from mouseemo.inference.qc import StreamingQC, frame_stats

    summary_path = Path(summary_path)
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        prefix, names = summary["model"]["score_prefix"], summary["names"]
        video, crop = summary["video"], summary["crop"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"{summary_path}: not a prediction summary ({err})") from None
    csv_path = summary_path.with_suffix(".csv")
    try:
        with open(csv_path, encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
    except OSError as err:
        raise DataError(f"{csv_path}: cannot read the predictions ({err})") from None
    header, rows = rows[0], rows[1:]
    cols = [header.index(f"{prefix}_{n}") for n in names]
    table = {
        "frame": np.array([int(r[0]) for r in rows], np.int64),
        "time_s": np.array([float(r[1]) for r in rows]),
        "label": np.array([r[header.index("label")] for r in rows]),
        "scores": np.array([[float(r[j]) for j in cols] for r in rows]),
    }
    with VideoReader(video, crop=tuple(crop) if crop else None) as vr:
        qc, motion, seen = StreamingQC(vr.height, vr.width), MotionCollector(), 0
        for _, frames in vr.iter_chunks(batch_size):
            stats = frame_stats(frames)
            qc.update(stats, table["time_s"][seen : seen + len(frames)])
            motion.update(stats)
            seen += len(frames)
    if seen != len(rows):
        raise DataError(f"{video}: decoded {seen} frames for the {len(rows)} rows of {csv_path}")
    return frame_features(qc.per_frame(), motion.motion(), table["scores"], prefix), table


def synthetic_nuisance(truth: dict[str, np.ndarray]) -> np.ndarray:
    """Frames of a synthetic session a human would not rate: a paw over the snout
    (``paw_occlusion`` >= :data:`PAW_OCCLUSION_MIN`) or a closing eye (``blink`` >= :data:`BLINK_MIN`),
    from ``truth/frames.csv`` columns (:func:`mouseemo.data.session.read_truth_frames`)."""
    n = len(truth["label"])
    paw = truth.get("paw_occlusion", np.zeros(n)) >= PAW_OCCLUSION_MIN
    return paw | (truth.get("blink", np.zeros(n)) >= BLINK_MIN)


def coverage_curve(
    score: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    thresholds: np.ndarray | None = None,
    labels: np.ndarray | None = None,
) -> list[dict]:
    """Macro-F1 on the kept frames as the threshold moves: per threshold ``t`` (ascending; default
    0, 0.05, ..., 1), the frames with ``score <= t`` are kept.

    Macro-F1 averages over the same classes at every threshold: ``labels``, by default those present
    or predicted among all frames. A class whose frames were all dropped counts with F1 0, so
    abstaining on a whole hard class does not raise the score.

    Returns:
        One dict per threshold: ``threshold``, ``coverage`` (kept fraction: never falls as ``t``
        rises), ``kept``, ``macro_f1_kept`` (NaN when nothing is kept) and ``macro_f1_all``.
    """
    from sklearn.metrics import f1_score

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    labels = np.union1d(y_true, y_pred) if labels is None else np.asarray(labels)

    def f1(keep: np.ndarray) -> float:
        if not keep.any():
            return float("nan")
        return float(f1_score(y_true[keep], y_pred[keep], labels=labels, average="macro", zero_division=0))

    score = np.asarray(score, np.float64)
    thresholds = np.linspace(0.0, 1.0, 21) if thresholds is None else np.asarray(thresholds, np.float64)
    total = f1(np.ones(len(score), bool))
    out = []
    for t in np.sort(thresholds):
        keep = score <= t
        out.append(
            {
                "threshold": float(t),
                "coverage": float(keep.mean()) if len(keep) else float("nan"),
                "kept": int(keep.sum()),
                "macro_f1_kept": f1(keep),
                "macro_f1_all": total,
            }
        )
    return out


def thresholds_for_coverage(score: np.ndarray, coverages) -> np.ndarray:
    """The thresholds that keep about each of ``coverages`` of the frames (score quantiles)."""
    return np.array([np.quantile(score, min(max(c, 0.0), 1.0), method="lower") for c in coverages])


__all__ = [
    "ABSTAIN",
    "COLUMNS",
    "FEATURES",
    "RULES",
    "MotionCollector",
    "RateableFrames",
    "RateableModel",
    "add_columns",
    "coverage_curve",
    "confidence_of",
    "frame_features",
    "label_agreement",
    "prediction_features",
    "rule_masks",
    "sidecar_path",
    "synthetic_nuisance",
    "thresholds_for_coverage",
    "unrateable_score",
]
