"""Stage metrics logging and per-frame test outputs shared by every LightningModule of mouseemo.

Modules that mix this in keep ``self.metrics`` (a ``ModuleDict`` of :class:`StageMetrics`),
``self.classes`` and ``self.test_rows`` (tuples ``(animal, session, frame, time_s, label, pred,
*scores)``), and name their score columns with ``score_prefix`` and :meth:`score_names`.
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from mouseemo.utils.io import atomic_path


class EvalOutputsMixin:
    #: Column prefix of the per-class scores in ``test_predictions.csv`` (``prob``, ``similarity``...).
    score_prefix = "prob"

    def score_names(self) -> list[str]:
        return list(self.classes)

    def _log_stage(self, stage: str) -> torch.Tensor:
        """Log the stage's scalar metrics, reset them and return the confusion matrix."""
        values, confmat = self.metrics[stage].compute()
        for name, value in values.items():
            self.log(name, value, prog_bar=name == "val/macro_f1")
        self.metrics[stage].reset()
        return confmat

    def _add_test_rows(self, batch: dict, preds: torch.Tensor, scores: torch.Tensor) -> None:
        """Append one row per frame of ``batch`` to ``test_rows`` (CPU ``preds`` ``(B,)``, ``scores``
        ``(B, K)``)."""
        for i in range(len(preds)):
            self.test_rows.append(
                (
                    batch["animal"][i],
                    batch["session"][i],
                    int(batch["frame"][i]),
                    float(batch["t_cam"][i]),
                    int(batch["label"][i]),
                    int(preds[i]),
                    *scores[i].tolist(),
                )
            )

    def write_test_predictions(self, path: str | Path) -> None:
        """Per-frame test predictions: animal, session, frame, time, label, pred, <prefix>_<name>..."""
        header = ["animal", "session", "frame", "time_s", "label", "pred"]
        header += [f"{self.score_prefix}_{n}" for n in self.score_names()]
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            for row in self.test_rows:
                label = self.classes[row[4]] if row[4] >= 0 else ""
                w.writerow([*row[:4], label, self.classes[row[5]], *[f"{p:.5f}" for p in row[6:]]])
