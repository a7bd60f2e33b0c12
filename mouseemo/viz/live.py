"""The figure of a live session (``mouseemo live --plot``): scores and latency over time."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from mouseemo.viz.plots import plt, save_figure


def plot_live(csv_path: str | os.PathLike, path: str | os.PathLike, title: str = "") -> Path:
    """Two panels from a live session's CSV: every class's score against capture time (warm-up
    frames shaded, the label drawn as a strip), and each scored frame's capture-to-score latency
    with the dropped frames (gaps in the captured-frame count) marked below it."""
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{csv_path}: no scored frames to plot")
    cols = [c for c in rows[0] if c.startswith(("prob_", "similarity_"))]
    t = np.array([float(r["capture_s"]) for r in rows])
    t = t - t[0]
    frame = np.array([int(r["frame"]) for r in rows])
    warm = np.array([r["warmup"] == "1" for r in rows])
    lat = np.array([float(r["latency_ms"]) for r in rows])
    scores = np.array([[float(r[c]) for c in cols] for r in rows])
    names = [c.split("_", 1)[1] for c in cols]
    labels = [r["label"] for r in rows]

    fig, (ax, ax_lat) = plt.subplots(
        2, 1, figsize=(9, 4.8), sharex=True, gridspec_kw={"height_ratios": [2.2, 1]}
    )
    colors = plt.get_cmap("tab10")
    for j, name in enumerate(names):
        ax.plot(t, scores[:, j], lw=1.2, color=colors(j % 10), label=name)
    if warm.any():
        ax.axvspan(t[warm].min(), t[warm].max(), color="0.85", zorder=0, label="warm-up (reference)")
    lo, hi = ax.get_ylim()
    strip = lo - 0.06 * (hi - lo)
    for j, name in enumerate(names):
        on = np.array([lab == name for lab in labels])
        ax.scatter(t[on], np.full(on.sum(), strip), s=6, marker="|", color=colors(j % 10))
    ax.set_ylim(strip - 0.04 * (hi - lo), hi)
    ax.set_ylabel(cols[0].split("_", 1)[0])
    ax.legend(loc="upper left", fontsize=8, ncol=min(4, len(names) + 1), frameon=False)
    ax.set_title(title or "mouseemo live: scores (label strip below)")

    live = ~warm
    ax_lat.plot(t[live], lat[live], ".", ms=2.5, color="0.2", label="scored frame")
    gaps = np.flatnonzero(np.diff(frame) > 1) + 1  # the frame before each gap was followed by drops
    if len(gaps):
        ax_lat.plot(t[gaps], np.zeros(len(gaps)), "v", ms=5, color="tab:red", label="after dropped frames")
    if live.any():
        p99 = float(np.percentile(lat[live], 99))
        ax_lat.axhline(p99, color="tab:orange", lw=1, ls="--", label=f"p99 {p99:.1f} ms")
    ax_lat.set_ylabel("latency (ms)")
    ax_lat.set_xlabel("capture time (s)")
    ax_lat.legend(loc="upper right", fontsize=8, frameon=False, ncol=3)
    fig.tight_layout()
    return save_figure(fig, path)
