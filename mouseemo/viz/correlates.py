"""Figures of neuron–expression correlates: population responses sorted by preferred emotion, and
example neurons beside their emotion's trace. Every function saves one figure atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mouseemo.viz.expressions import color_of
from mouseemo.viz.plots import plt, save_figure


def _zscore(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    sd = x.std(axis=-1, keepdims=True)
    return (x - x.mean(axis=-1, keepdims=True)) / np.where(sd > 0, sd, 1.0)


def _scaled(y: np.ndarray) -> np.ndarray:
    lo, hi = np.min(y), np.max(y)
    return (y - lo) / (hi - lo) if hi > lo else np.zeros_like(y)


def _shade(ax, windows: Sequence[tuple[float, float, str]]) -> None:
    for start, stop, label in windows:
        ax.axvspan(start, stop, color=color_of(label), alpha=0.15, lw=0)


def plot_responses(
    t: np.ndarray,
    activity: np.ndarray,
    traces: np.ndarray,
    names: Sequence[str],
    preferred: Sequence[str],
    r_best: np.ndarray,
    path: str | os.PathLike,
    windows: Sequence[tuple[float, float, str]] = (),
    title: str = "",
) -> Path:
    """Face traces on top; z-scored activity of the significant neurons below, sorted by preferred
    emotion (in ``names`` order) and, within one, by correlation (all neurons when none is significant).

    Args:
        t: ``(T,)`` imaging-frame times.
        activity: ``(N, T)`` neural activity.
        traces: ``(K, T)`` face traces.
        names: ``K`` trace names.
        preferred: ``N`` preferred emotions (``none`` when not significant).
        r_best: ``(N,)`` each neuron's best correlation.
        path: output image.
        windows: ``(start, stop, label)`` stimulus windows to shade.
        title: figure title.
    """
    preferred = list(preferred)
    sel = [i for i, p in enumerate(preferred) if p in names]
    note = ""
    if not sel:
        sel = list(range(len(preferred)))
        note = " (no significant neuron: all neurons by correlation)"
    rank = {n: k for k, n in enumerate(names)}
    sel.sort(key=lambda i: (rank.get(preferred[i], len(names)), -float(r_best[i])))
    k = len(names)
    fig = plt.figure(figsize=(11, 2.0 + 0.35 * k + min(0.03 * len(sel), 6.0)))
    grid = fig.add_gridspec(2, 2, height_ratios=[0.35 * k + 0.4, 1.5 + min(0.03 * len(sel), 6.0)],
                            width_ratios=[0.02, 1], hspace=0.08, wspace=0.01)  # fmt: skip
    ax_tr = fig.add_subplot(grid[0, 1])
    for j, name in enumerate(names):
        ax_tr.plot(t, _scaled(traces[j]) * 0.9 + (k - 1 - j), color=color_of(name), lw=0.7)
    _shade(ax_tr, windows)
    ax_tr.set_yticks(np.arange(k)[::-1] + 0.45)
    ax_tr.set_yticklabels(names, fontsize=7)
    ax_tr.tick_params(labelbottom=False, bottom=False)
    ax_tr.set_xlim(t[0], t[-1])
    ax_tr.set_title((title or "neurons sorted by preferred emotion") + note, fontsize=9)
    ax_hm = fig.add_subplot(grid[1, 1], sharex=ax_tr)
    z = _zscore(activity[sel])
    ax_hm.imshow(z, aspect="auto", cmap="magma", vmin=-1.0, vmax=3.0, interpolation="nearest",
                 extent=(t[0], t[-1], len(sel), 0))  # fmt: skip
    ax_hm.set_xlabel("time (s)")
    ax_hm.set_ylabel("neuron")
    ax_bar = fig.add_subplot(grid[1, 0], sharey=ax_hm)
    colors = [color_of(preferred[i]) if preferred[i] in names else "#dddddd" for i in sel]
    for row, c in enumerate(colors):
        ax_bar.axhspan(row, row + 1, color=c, lw=0)
    ax_bar.set_xticks([])
    ax_bar.set_yticks([])
    return save_figure(fig, path)


def plot_examples(
    t: np.ndarray,
    activity: np.ndarray,
    traces: np.ndarray,
    names: Sequence[str],
    preferred: Sequence[str],
    r_best: np.ndarray,
    neuron_ids: Sequence[int],
    path: str | os.PathLike,
    windows: Sequence[tuple[float, float, str]] = (),
) -> Path:
    """For each emotion with a significant neuron: its trace and its best neuron's activity, overlaid.

    Emotions without a significant neuron show the best-correlated neuron, marked "n.s.".
    """
    k = len(names)
    fig, axes = plt.subplots(k, 1, figsize=(11, 0.6 + 1.1 * k), sharex=True, squeeze=False)
    preferred = list(preferred)
    for j, (ax, name) in enumerate(zip(axes[:, 0], names)):
        own = [i for i, p in enumerate(preferred) if p == name]
        pool = own or list(range(len(preferred)))
        if own:
            i = max(pool, key=lambda i: float(r_best[i]))
            tag = ""
        else:
            i = None
            tag = " (no significant neuron)"
        _shade(ax, windows)
        ax.plot(t, _scaled(traces[j]), color=color_of(name), lw=1.0, label=f"{name} (face)")
        if i is not None:
            ax.plot(t, _scaled(activity[i]), color="k", lw=0.6, alpha=0.8,
                    label=f"neuron {int(neuron_ids[i])}, r={float(r_best[i]):.2f}")  # fmt: skip
        ax.set_yticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
        ax.legend(loc="best", fontsize=7, framealpha=0.7, title=tag or None, title_fontsize=7)
    axes[-1, 0].set_xlabel("time (s)")
    axes[0, 0].set_title(
        "example neurons (black) beside each emotion's face trace (min-max scaled)", fontsize=9
    )
    return save_figure(fig, path)
