"""Figures of expression analyses: similarity traces, peri-stimulus means, the clustered frame x
frame correlation matrix and t-SNE embeddings. Every function saves one figure atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from mouseemo.constants import EMOTIONS

#: One colour per emotion, used by every figure so a label always looks the same.
EMOTION_COLORS: dict[str, str] = {
    "neutral": "#7f7f7f",
    "pleasure": "#2ca02c",
    "disgust": "#8c564b",
    "malaise": "#9467bd",
    "pain": "#d62728",
    "passive_fear": "#1f77b4",
    "active_fear": "#ff7f0e",
}


def color_of(name: str) -> str:
    if name in EMOTION_COLORS:
        return EMOTION_COLORS[name]
    return f"C{sum(name.encode()) % 10}"  # stable across processes, unlike hash()


def plot_similarity_traces(
    times: np.ndarray,
    scaled: np.ndarray,
    names: Sequence[str],
    path: str | os.PathLike,
    windows: Sequence[tuple[float, float, str]] = (),
    title: str = "",
) -> Path:
    """Stacked similarity traces (already min-max scaled), stimulus windows shaded.

    Args:
        times: ``(T,)`` seconds.
        scaled: ``(T, K)`` traces in ``[0, 1]``.
        names: prototype names.
        path: output image.
        windows: ``(start, stop, label)`` stimulus windows to shade.
        title: figure title.
    """
    k = len(names)
    from mouseemo.viz.plots import plt, save_figure  # matplotlib loads when a plot is drawn

    fig, axes = plt.subplots(k, 1, figsize=(10, 0.9 + 0.8 * k), sharex=True, squeeze=False)
    for j, (ax, name) in enumerate(zip(axes[:, 0], names)):
        for start, stop, label in windows:
            ax.axvspan(start, stop, color=color_of(label), alpha=0.2, lw=0)
        ax.plot(times, scaled[:, j], color=color_of(name), lw=0.7)
        ax.set_ylim(-0.05, 1.05)
        ax.set_yticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center")
    axes[-1, 0].set_xlabel("time (s)")
    axes[0, 0].set_title(title or "similarity to each prototype (min-max scaled)")
    return save_figure(fig, path)


def plot_peri_stimulus(
    results: Mapping[str, object],
    path: str | os.PathLike,
    show: Sequence[str] | None = None,
    title: str = "",
) -> Path:
    """Mean +- sem similarity around stimulus onsets: one panel per stimulus label.

    Args:
        results: label -> :class:`mouseemo.analysis.expressions.PeriStimulus`.
        path: output image.
        show: prototype names to draw (default: neutral and the panel's own label when present,
            else all).
    """
    labels = [lab for lab in EMOTIONS if lab in results] + [lab for lab in results if lab not in EMOTIONS]
    n = max(len(labels), 1)
    from mouseemo.viz.plots import plt, save_figure  # matplotlib loads when a plot is drawn

    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 2.8), sharey=True, squeeze=False)
    for ax, label in zip(axes[0], labels):
        res = results[label]
        names = res.names
        draw = list(show) if show else [x for x in ("neutral", label) if x in names] or names
        for name in draw:
            j = names.index(name)
            m, s = res.mean[:, j], res.sem[:, j]
            ax.plot(res.t, m, color=color_of(name), label=name)
            ax.fill_between(res.t, m - s, m + s, color=color_of(name), alpha=0.25, lw=0)
        ax.axvline(0, color="k", lw=0.8, ls="--")
        ax.set_title(f"{label} (n={len(res.onsets)})")
        ax.set_xlabel("time from onset (s)")
        ax.legend(fontsize=7, loc="best")
    axes[0, 0].set_ylabel("similarity (r)")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_correlation_matrix(
    corr: np.ndarray,
    order: np.ndarray,
    path: str | os.PathLike,
    labels: Sequence[str] | None = None,
    title: str = "",
) -> Path:
    """Frame x frame correlation matrix in clustering order, with a label strip when given."""
    c = np.asarray(corr)[np.ix_(order, order)]
    from mouseemo.viz.plots import plt, save_figure  # matplotlib loads when a plot is drawn

    fig = plt.figure(figsize=(6.4, 6))
    if labels is not None:
        ax_strip = fig.add_axes([0.08, 0.9, 0.72, 0.03])
        ax = fig.add_axes([0.08, 0.08, 0.72, 0.8])
        names = list(dict.fromkeys(labels))
        lab = np.asarray(labels)[order]
        rgb = np.array([[int(color_of(x).lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)] for x in lab])
        ax_strip.imshow(rgb[None], aspect="auto", interpolation="nearest")
        ax_strip.set_axis_off()
        for x in names:
            ax_strip.plot([], [], "s", color=color_of(x), label=x)
        ax_strip.legend(ncol=min(len(names), 4), fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    else:
        ax = fig.add_axes([0.08, 0.08, 0.72, 0.85])
    im = ax.imshow(c, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_xlabel("frame (clustered order)")
    ax.set_ylabel("frame (clustered order)")
    cax = fig.add_axes([0.83, 0.08, 0.03, 0.8])
    fig.colorbar(im, cax=cax, label="Pearson r")
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def plot_embedding(
    embedding: np.ndarray,
    labels: Sequence[str],
    path: str | os.PathLike,
    title: str = "",
) -> Path:
    """2-D embedding (t-SNE) of frames coloured by stimulus label."""
    emb = np.asarray(embedding)
    lab = np.asarray(labels)
    from mouseemo.viz.plots import plt, save_figure  # matplotlib loads when a plot is drawn

    fig, ax = plt.subplots(figsize=(5, 4.5))
    for name in dict.fromkeys(lab.tolist()):
        m = lab == name
        ax.scatter(emb[m, 0], emb[m, 1], s=4, color=color_of(name), label=name, alpha=0.7)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    ax.legend(fontsize=7, markerscale=3)
    ax.set_title(title or "frames (PCA + t-SNE)")
    return save_figure(fig, path)
