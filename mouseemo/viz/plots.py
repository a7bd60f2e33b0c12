"""Figures saved in run directories (matplotlib, Agg backend, atomic writes)."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mouseemo.utils.io import atomic_path  # noqa: E402


def save_figure(fig, path: str | os.PathLike, dpi: int = 120) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_confusion_matrix(
    confmat: np.ndarray, classes: Sequence[str], path: str | os.PathLike, title: str = ""
) -> Path:
    """Row-normalised confusion matrix (rows = truth) with counts in each cell."""
    cm = np.asarray(confmat, dtype=float)
    norm = cm / np.clip(cm.sum(1, keepdims=True), 1, None)
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * len(classes), 0.8 + 0.7 * len(classes)))
    im = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(
                j,
                i,
                f"{int(cm[i, j])}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of true class")
    ax.set_title(title or "confusion matrix")
    return save_figure(fig, path)


def plot_per_class(
    values: dict[str, float], path: str | os.PathLike, ylabel: str = "F1", title: str = ""
) -> Path:
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(values), 3))
    ax.bar(list(values), list(values.values()), color="tab:blue")
    ax.set_ylim(0, 1)
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", rotation=45)
    ax.set_title(title)
    return save_figure(fig, path)


def plot_training_curves(metrics_csv: str | os.PathLike, path: str | os.PathLike) -> Path | None:
    """Loss and validation macro-F1 per epoch from a Lightning CSVLogger ``metrics.csv``."""
    metrics_csv = Path(metrics_csv)
    if not metrics_csv.is_file():
        return None
    with open(metrics_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    series: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        for key in ("train/loss_epoch", "val/loss", "val/macro_f1"):
            if row.get(key) not in (None, ""):
                series.setdefault(key, []).append((float(row["epoch"]), float(row[key])))
    if not series:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(9, 3))
    for key in ("train/loss_epoch", "val/loss"):
        if key in series:
            x, y = zip(*series[key])
            axes[0].plot(x, y, marker="o", label=key)
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("loss")
    if axes[0].lines:
        axes[0].legend()
    if "val/macro_f1" in series:
        x, y = zip(*series["val/macro_f1"])
        axes[1].plot(x, y, marker="o", color="tab:green")
    axes[1].set_ylim(0, 1)
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("val macro-F1")
    return save_figure(fig, path)
