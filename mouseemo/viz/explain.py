"""Drawing explanation maps: the face with one heat map per emotion, as a titled grid (PNG bytes),
and a cheap OpenCV blend of one map onto an overlay frame.

Maps that are never negative (prototype differences, Grad-CAM) use a sequential colour map from 0 to
the largest value of the figure; signed maps (similarity contributions, integrated gradients) use a
diverging one, symmetric about 0 (red: toward the emotion, blue: away from it). All panels of one
figure share one scale, so emotions can be compared.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import cv2
import numpy as np


def _scale(maps: np.ndarray) -> tuple[str, float, float]:
    maps = np.nan_to_num(np.asarray(maps, dtype=np.float64))
    signed = bool((maps < -1e-12 * max(float(np.abs(maps).max(initial=0.0)), 1e-30)).any())
    top = float(np.abs(maps).max(initial=0.0)) or 1.0
    return ("RdBu_r", -top, top) if signed else ("inferno", 0.0, top)


def explanation_figure(
    image: np.ndarray | None,
    maps: np.ndarray,
    names: Sequence[str],
    title: str = "",
    subtitles: Sequence[str] | None = None,
    cols: int = 4,
    panel_inches: float = 2.2,
    dpi: int = 90,
    scale_rows: Sequence[int] | None = None,
) -> bytes:
    """A PNG (bytes): the face (when given) then one panel per map, each the face under its map.

    Args:
        image: gray uint8 ``(H, W)`` face, or ``None`` (maps drawn alone).
        maps: ``(K, H, W)`` maps at the image's resolution.
        names: ``K`` panel titles.
        title: the figure's title.
        subtitles: optional ``K`` strings appended to the panel titles (e.g. scores).
        scale_rows: the maps that set the shared colour scale (default: all; others may saturate).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    maps = np.asarray(maps, dtype=np.float32)
    k = len(maps)
    panels = k + (image is not None)
    cols = max(1, min(cols, panels))
    rows = -(-panels // cols)
    h, w = maps.shape[-2:]
    fig = Figure(figsize=(cols * panel_inches, rows * panel_inches * h / w + 0.5))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    cmap, vmin, vmax = _scale(maps if scale_rows is None else maps[list(scale_rows)])
    im = None
    j = 0
    if image is not None:
        axes[0].imshow(image, cmap="gray", vmin=0, vmax=255)
        axes[0].set_title("face", fontsize=9)
        j = 1
    for i in range(k):
        ax = axes[j + i]
        if image is not None:
            ax.imshow(image, cmap="gray", vmin=0, vmax=255)
            im = ax.imshow(maps[i], cmap=cmap, vmin=vmin, vmax=vmax, alpha=0.6, interpolation="nearest")
        else:
            im = ax.imshow(maps[i], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        label = str(names[i]).replace("_", " ")
        if subtitles is not None:
            label = f"{label} {subtitles[i]}"
        ax.set_title(label, fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[panels:]:
        ax.set_axis_off()
    if im is not None:
        fig.colorbar(im, ax=list(axes[:panels]), shrink=0.6, pad=0.01)
    if title:
        fig.suptitle(title, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def blend_map(img_bgr: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """``img_bgr`` ``(h, w, 3)`` uint8 with ``heat`` ``(H, W)`` drawn over it (resized to fit).

    Only the positive part is drawn (the evidence for the map's emotion), scaled to its own maximum,
    with OpenCV's ``COLORMAP_INFERNO``; pixels where the map is 0 stay as they are.
    """
    h, w = img_bgr.shape[:2]
    heat = np.clip(np.nan_to_num(np.asarray(heat, dtype=np.float32)), 0, None)
    top = float(heat.max(initial=0.0))
    if top <= 0:
        return img_bgr
    heat = cv2.resize(heat / top, (w, h), interpolation=cv2.INTER_NEAREST)
    colour = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
    weight = (alpha * heat)[..., None]
    out = img_bgr.astype(np.float32) * (1 - weight) + colour.astype(np.float32) * weight
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


__all__ = ["blend_map", "explanation_figure"]
