"""Classification metrics shared by every model (torchmetrics, one collection per stage)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score

from mouseemo.data.events import IGNORE_INDEX


class StageMetrics(nn.Module):
    """Accuracy, balanced accuracy, macro-F1, per-class F1 and the confusion matrix of one stage.

    Frames labelled ``IGNORE_INDEX`` are left out. Scalar results are named ``<stage>/<metric>``,
    per-class F1 as ``<stage>/f1_<class>``.
    """

    def __init__(self, stage: str, classes: Sequence[str]) -> None:
        super().__init__()
        self.stage = stage
        self.classes = list(classes)
        k = len(self.classes)
        # update() drops frames labelled IGNORE_INDEX before any metric sees them; "macro" is
        # torchmetrics' default average
        self.scalars = MetricCollection(
            {
                "accuracy": MulticlassAccuracy(k, average="micro"),
                "balanced_accuracy": MulticlassAccuracy(k),
                "macro_f1": MulticlassF1Score(k),
            }
        )
        self.per_class_f1 = MulticlassF1Score(k, average=None)
        self.confmat = MulticlassConfusionMatrix(k)

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        keep = target != IGNORE_INDEX
        if keep.any():
            self.scalars.update(preds[keep], target[keep])
            self.per_class_f1.update(preds[keep], target[keep])
            self.confmat.update(preds[keep], target[keep])

    def compute(self) -> tuple[dict[str, float], torch.Tensor]:
        """Scalar metrics (with per-class F1) and the ``(K, K)`` confusion matrix (rows = truth)."""
        out = {f"{self.stage}/{k}": float(v) for k, v in self.scalars.compute().items()}
        for name, v in zip(self.classes, self.per_class_f1.compute()):
            out[f"{self.stage}/f1_{name}"] = float(v)
        return out, self.confmat.compute().cpu()

    def reset(self) -> None:
        self.scalars.reset()
        self.per_class_f1.reset()
        self.confmat.reset()
