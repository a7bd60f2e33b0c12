"""HOG prototype maps: where, and how strongly, each prototype differs from neutral, and each cell's
share of a frame's Pearson similarities (see :mod:`mouseemo.inference.explain`)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from mouseemo.errors import ConfigError
from mouseemo.models.prototypes_io import Prototypes
from mouseemo.ops import cells_on_frame, fold_cells, hog

#: Map kinds :func:`~mouseemo.inference.explain.explain_frames` computes for HOG prototype models.
PROTOTYPE_METHODS = ("contrib",)


def cells_to_pixels(
    cells: np.ndarray, hog: dict, frame_size: Sequence[int], out_size: Sequence[int] | None = None
) -> np.ndarray:
    """Cell maps ``(..., ncy, ncx)`` -> pixel maps ``(..., H, W)`` float32 (see the module notes)."""
    return resize_maps(cells_on_frame(cells, hog, frame_size), out_size)


def resize_maps(maps: np.ndarray, out_size: Sequence[int] | None, nearest: bool = True) -> np.ndarray:
    """Resize ``(..., H, W)`` maps to ``out_size`` ``(H, W)`` (no-op when equal or ``None``)."""
    maps = np.asarray(maps, dtype=np.float32)
    if out_size is None or tuple(maps.shape[-2:]) == (int(out_size[0]), int(out_size[1])):
        return maps
    h, w = int(out_size[0]), int(out_size[1])
    flat = maps.reshape(-1, *maps.shape[-2:])
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    out = np.stack([cv2.resize(m, (w, h), interpolation=interp) for m in flat]) if len(flat) else flat
    return out.reshape(*maps.shape[:-2], h, w)


def neutral_index(names: Sequence[str]) -> int:
    if "neutral" not in names:
        raise ConfigError(f"explanation maps need a 'neutral' prototype; the prototypes are {list(names)}")
    return list(names).index("neutral")


def prototype_cell_maps(protos: Prototypes) -> np.ndarray:
    """``(K, ncy, ncx)``: per prototype, the L2 norm of (prototype - neutral) over each cell's features."""
    m = protos.matrix.astype(np.float64)
    diff = m - m[neutral_index(protos.names)]
    return fold_cells(diff, protos.hog, protos.frame_size, reduce="l2")


def prototype_maps(protos: Prototypes, out_size: Sequence[int] | None = None) -> np.ndarray:
    """``(K, H, W)`` float32 pixel maps of :func:`prototype_cell_maps` (neutral's row is 0)."""
    return cells_to_pixels(prototype_cell_maps(protos), protos.hog, protos.frame_size, out_size)


def _standardise(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=-1, keepdims=True)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.where(norm > 1e-12, x / np.maximum(norm, 1e-12), 0.0)


def contribution_cells(
    feats: np.ndarray,
    matrix: np.ndarray,
    names: Sequence[str],
    hog: dict,
    frame_size: Sequence[int],
    relative: str | None = "neutral",
) -> np.ndarray:
    """Per-cell contributions ``(B, K, ncy, ncx)`` float64 to Pearson similarities (module notes).

    Each frame's row ``k`` sums over cells to ``r(f, P_k) - r(f, P_neutral)`` for an emotion and to
    ``r(f, P_neutral)`` for neutral (``relative="neutral"``), or to ``r(f, P_k)`` (``relative=None``).
    """
    zf = _standardise(np.asarray(feats, dtype=np.float64).reshape(-1, np.shape(feats)[-1]))
    zp = _standardise(np.asarray(matrix, dtype=np.float64))
    if relative == "neutral":
        n = neutral_index(names)
        zp = np.where(np.arange(len(zp))[:, None] == n, zp, zp - zp[n])
    elif relative is not None:
        raise ConfigError(f"relative must be 'neutral' or None; got {relative!r}")
    per_feature = zf[:, None, :] * zp[None, :, :]  # (B, K, D)
    return fold_cells(per_feature, hog, frame_size, reduce="sum")


def contribution_maps(
    feats, matrix, names, hog, frame_size, out_size=None, relative: str | None = "neutral"
) -> np.ndarray:
    """``(B, K, H, W)`` float32 pixel maps of :func:`contribution_cells`."""
    cells = contribution_cells(feats, matrix, names, hog, frame_size, relative)
    return cells_to_pixels(cells, hog, frame_size, out_size)


def hog_prototypes_of(scorer) -> Prototypes | None:
    """The prototypes behind a scorer: a prototypes file, or a ``model=hog_proto`` checkpoint."""
    if getattr(scorer, "kind", "") == "prototypes":
        return scorer.protos
    return getattr(getattr(scorer, "module", None), "protos", None)


def scorer_contributions(
    scorer, protos: Prototypes, x: torch.Tensor, out_size
) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell similarity contribution maps ``(b, K, H, W)`` (resized to ``out_size``) and the
    similarities ``(b, K)`` of a prototype scorer's prepared uint8 frames ``x`` ``(b, h, w)``."""
    feats = hog(x, **protos.hog).double().cpu().numpy()
    matrix = scorer.matrix.double().cpu().numpy() if hasattr(scorer, "matrix") else protos.matrix
    cells = contribution_cells(feats, matrix, protos.names, protos.hog, protos.frame_size)
    rel = np.asarray(cells.sum(axis=(-2, -1)))
    n = neutral_index(protos.names)
    scores = rel.copy()
    scores[:, np.arange(len(protos.names)) != n] += rel[:, n : n + 1]  # r_k = (r_k - r_n) + r_n
    maps = cells_to_pixels(cells, protos.hog, protos.frame_size, out_size)
    return maps, scores.astype(np.float32)
