"""Overlay videos: each frame of the face with its label and one bar per class drawn on it.

Drawn with OpenCV on the cropped face (enlarged to at least :data:`MIN_HEIGHT` pixels so the text
stays legible) and written with ``cv2.VideoWriter`` (``mp4v``) at the video's frame rate.
Probabilities are drawn as they are; similarities, which differ little between prototypes, are
drawn relative to the frame's lowest and highest similarity, with their values printed beside.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from mouseemo.errors import DataError
from mouseemo.viz.explain import blend_map
from mouseemo.viz.expressions import color_of

#: Overlay frames are at least this tall (small faces are enlarged by an integer factor).
MIN_HEIGHT = 360

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _bgr(color: str) -> tuple[int, int, int]:
    if color.startswith("#"):
        r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
        return b, g, r
    import matplotlib.colors as mcolors

    r, g, b = (int(255 * v) for v in mcolors.to_rgb(color))
    return b, g, r


def overlay_scale(height: int) -> int:
    """Integer enlargement of a ``height``-pixel face for the overlay."""
    return max(1, math.ceil(MIN_HEIGHT / max(height, 1)))


def draw_overlay(
    frame: np.ndarray,
    label: str,
    names: Sequence[str],
    scores: np.ndarray,
    prefix: str,
    time_s: float | None = None,
    heat: np.ndarray | None = None,
) -> np.ndarray:
    """One overlay frame: the face, the current label, and a bar per class.

    Args:
        frame: gray uint8 ``(H, W)``.
        label: the frame's label.
        names: class names, in score order.
        scores: ``(K,)`` scores of the frame.
        prefix: ``prob`` (bars are the probabilities) or ``similarity``.
        time_s: the frame's time, printed when given.
        heat: ``(H, W)`` explanation map of the label, blended onto the face when given
            (:func:`mouseemo.viz.explain.blend_map`).

    Returns:
        BGR uint8 ``(s H, s W, 3)`` with ``s = overlay_scale(H)``.
    """
    s = overlay_scale(frame.shape[0])
    img = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if s > 1:
        img = cv2.resize(img, (frame.shape[1] * s, frame.shape[0] * s), interpolation=cv2.INTER_NEAREST)
    if heat is not None:
        img = blend_map(img, heat)
    h, w = img.shape[:2]
    scores = np.asarray(scores, dtype=np.float64)
    if prefix == "prob":
        lengths = np.clip(scores, 0.0, 1.0)
    else:
        lo, hi = np.nanmin(scores), np.nanmax(scores)
        lengths = (scores - lo) / (hi - lo) if hi > lo else np.zeros_like(scores)
    k = len(names)
    row = max(14, min(24, (h - 40) // max(k, 1)))
    fs = row / 36.0
    bar_x, bar_w = int(0.30 * w), int(0.45 * w)
    panel_top = h - k * row - 8
    shade = img.copy()
    cv2.rectangle(shade, (0, panel_top - 4), (w, h), (0, 0, 0), thickness=-1)
    cv2.rectangle(shade, (0, 0), (w, row + 14), (0, 0, 0), thickness=-1)
    img = cv2.addWeighted(shade, 0.55, img, 0.45, 0)
    cv2.putText(img, label, (6, row + 4), _FONT, fs * 1.4, _bgr(color_of(label)), 2, cv2.LINE_AA)
    if time_s is not None:
        text = f"{time_s:8.2f} s"
        (tw, _), _ = cv2.getTextSize(text, _FONT, fs, 1)
        cv2.putText(img, text, (w - tw - 6, row + 2), _FONT, fs, (255, 255, 255), 1, cv2.LINE_AA)
    for j, name in enumerate(names):
        y = panel_top + j * row
        color = _bgr(color_of(name))
        thick = 2 if name == label else 1
        cv2.putText(img, name, (6, y + row - 6), _FONT, fs, color, thick, cv2.LINE_AA)
        x1 = bar_x + int(round(float(lengths[j]) * bar_w)) if np.isfinite(lengths[j]) else bar_x
        cv2.rectangle(img, (bar_x, y + 3), (bar_x + bar_w, y + row - 3), (90, 90, 90), 1)
        if x1 > bar_x:
            cv2.rectangle(img, (bar_x, y + 3), (x1, y + row - 3), color, thickness=-1)
        value = f"{scores[j]:.3f}" if np.isfinite(scores[j]) else "nan"
        cv2.putText(img, value, (bar_x + bar_w + 6, y + row - 6), _FONT, fs, (255, 255, 255), 1, cv2.LINE_AA)
    return img


class OverlayWriter:
    """Writes overlay frames to an MP4 (``mp4v``); use as a context manager.

    Args:
        path: output file (give a temporary path and rename it when done for atomic writes).
        fps: frame rate of the output.
        height, width: size of the (cropped) face frames that will be drawn.
        names, prefix: classes and score kind (see :func:`draw_overlay`).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float,
        height: int,
        width: int,
        names: Sequence[str],
        prefix: str,
    ) -> None:
        self.path = Path(path)
        self.names, self.prefix = list(names), prefix
        s = overlay_scale(height)
        self.size = (width * s, height * s)
        self._writer = cv2.VideoWriter(
            str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), self.size, True
        )
        if not self._writer.isOpened():
            raise DataError(f"cannot write the overlay video {self.path} (OpenCV has no mp4v encoder?)")
        self.num_frames = 0

    def write(
        self, frames: np.ndarray, labels: Sequence[str], scores: np.ndarray, times=None, heat=None
    ) -> None:
        """Draw and append ``b`` frames: gray ``(b, H, W)``, labels ``(b,)``, scores ``(b, K)``, and
        optionally each label's map ``heat`` ``(b, H, W)``."""
        for i, frame in enumerate(frames):
            t = None if times is None else float(times[i])
            h = None if heat is None else heat[i]
            self._writer.write(draw_overlay(frame, labels[i], self.names, scores[i], self.prefix, t, h))
        self.num_frames += len(frames)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self) -> OverlayWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
