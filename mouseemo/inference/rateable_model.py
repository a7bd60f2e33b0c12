"""The learned unrateable score: logistic models on per-frame features, stored as JSON.

Two parts, each a logistic regression on standardized features, fitted on frames of animals the
classifier was not trained on:

* **nuisance**: the image features (:data:`IMAGE_FEATURES`: sharpness, face correlation,
  brightness, motion) against frames a human would not rate (a paw over the snout, a blink);
* **error**: the classifier's own features (:data:`CLASSIFIER_FEATURES`: confidence, entropy of the
  probabilities, agreement of the label with its neighbours') against wrong labels, i.e. the
  classifier's confidence calibrated on validation frames.

Kept apart, the image features cannot learn "this face moves, so it is an expression, so the label
is often wrong" (expressions are when the face moves and when the classifier errs), which would
abstain on whole classes. The score is the probability that either part says "not rateable":
``1 - (1 - p_nuisance) * (1 - p_error)``. A part without both kinds of frames to fit on is left out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mouseemo import __version__
from mouseemo.errors import DataError
from mouseemo.utils.io import write_json_atomic

#: Image features: what the frame looks like against the rest of its video.
IMAGE_FEATURES: tuple[str, ...] = ("sharpness", "face_r", "brightness", "motion")

#: Classifier features: how sure the model is, and whether its label holds over neighbouring frames.
CLASSIFIER_FEATURES: tuple[str, ...] = ("confidence", "entropy", "agreement")

#: Every per-frame feature, in order.
FEATURES: tuple[str, ...] = IMAGE_FEATURES + CLASSIFIER_FEATURES

#: The parts of a model and the features each reads.
PARTS: dict[str, tuple[str, ...]] = {"nuisance": IMAGE_FEATURES, "error": CLASSIFIER_FEATURES}

#: Coverage on the fitting frames the stored threshold keeps.
FIT_COVERAGE = 0.9

#: Smallest feature spread the model standardizes by (features are log ratios, correlations, probabilities).
MIN_SCALE = 0.01


@dataclass
class LogisticPart:
    """One logistic regression on standardized features."""

    features: list[str]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def score(self, features: dict) -> np.ndarray:
        x = np.stack([np.asarray(features[f], np.float64) for f in self.features], axis=1)
        z = (x - self.mean) / self.scale @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    @classmethod
    def fit(cls, features: dict, names, target: np.ndarray) -> LogisticPart:
        from sklearn.linear_model import LogisticRegression

        x = np.stack([np.asarray(features[f], np.float64) for f in names], axis=1)
        mean = x.mean(axis=0)
        scale = np.maximum(x.std(axis=0), MIN_SCALE)  # a nearly constant feature is not blown up
        lr = LogisticRegression(C=1.0, max_iter=1000).fit((x - mean) / scale, target)
        return cls(list(names), mean, scale, lr.coef_[0], float(lr.intercept_[0]))

    def to_dict(self) -> dict:
        return {
            "features": self.features,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
        }

    @classmethod
    def from_dict(cls, rec: dict) -> LogisticPart:
        feats = [str(f) for f in rec["features"]]
        arrays = [np.asarray(rec[k], np.float64) for k in ("mean", "scale", "coef")]
        unknown = sorted(set(feats) - set(FEATURES))
        if unknown or any(a.shape != (len(feats),) for a in arrays) or not np.all(np.isfinite(arrays)):
            raise ValueError(f"features {unknown or feats} or their weights are malformed")
        return cls(feats, *arrays, float(rec["intercept"]))


@dataclass
class RateableModel:
    """The learned unrateable score: its parts (by name) and the threshold it was fitted with."""

    parts: dict[str, LogisticPart]
    threshold: float
    info: dict = field(default_factory=dict)

    def score(self, features: dict) -> np.ndarray:
        """Probability that each frame is not rateable, ``(n,)`` float64."""
        keep = np.ones(len(features[FEATURES[0]]))
        for part in self.parts.values():
            keep *= 1.0 - part.score(features)
        return 1.0 - keep

    @classmethod
    def fit(
        cls,
        features: dict,
        nuisance: np.ndarray | None = None,
        wrong: np.ndarray | None = None,
        coverage: float = FIT_COVERAGE,
        **info,
    ) -> RateableModel:
        """Fit the ``nuisance`` part on frames marked in ``nuisance`` and the ``error`` part on frames
        marked in ``wrong`` (either ``None``: no such part); the stored threshold keeps ``coverage``
        of these frames. ``info`` is kept in the file (provenance).

        Raises:
            DataError: neither target has both kinds of frames.
        """
        parts, counts = {}, {}
        for name, target in (("nuisance", nuisance), ("error", wrong)):
            if target is None:
                continue
            target = np.asarray(target, bool)
            counts[name] = int(target.sum())
            if 0 < target.sum() < len(target):
                parts[name] = LogisticPart.fit(features, PARTS[name], target)
        if not parts:
            raise DataError("rateable model: the fitting frames need both rateable and unrateable frames")
        model = cls(parts, 1.0, info)
        model.threshold = float(np.quantile(model.score(features), coverage))
        n = len(features[FEATURES[0]])
        model.info.update(frames=int(n), positives=counts, coverage=coverage)
        return model

    def save(self, path: str | Path) -> Path:
        record = {
            "mouseemo_version": __version__,
            "kind": "logistic",
            "parts": {k: p.to_dict() for k, p in self.parts.items()},
            "threshold": self.threshold,
            "info": self.info,
        }
        write_json_atomic(path, record)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> RateableModel:
        """Read a model :meth:`save` wrote; DataError naming the file when it is not one."""
        path = Path(path)
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
            parts = {str(k): LogisticPart.from_dict(v) for k, v in rec["parts"].items()}
            model = cls(parts, float(rec["threshold"]), dict(rec.get("info", {})))
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise DataError(f"{path}: not a rateable model ({err})") from None
        if not parts or not 0.0 <= model.threshold <= 1.0:
            raise DataError(f"{path}: not a rateable model (no parts, or threshold outside [0, 1])")
        return model


__all__ = [
    "CLASSIFIER_FEATURES",
    "FEATURES",
    "FIT_COVERAGE",
    "IMAGE_FEATURES",
    "PARTS",
    "LogisticPart",
    "RateableModel",
]
