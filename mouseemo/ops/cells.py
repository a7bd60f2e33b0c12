"""HOG cell geometry: per-feature values folded back onto the cells of the frame, and cells onto pixels.

A HOG vector of a frame is laid out as scikit-image's ``(n_blocks_r, n_blocks_c, cells_r, cells_c,
orientations)``; slot ``(a, b)`` of block ``(i, j)`` describes cell ``(i + a, j + b)``, so every
feature belongs to exactly one cell ("folding" blocks back onto cells).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mouseemo.errors import DataError
from mouseemo.ops._hog.params import HOGParams


def fold_cells(values: np.ndarray, hog: dict, frame_size: Sequence[int], reduce: str = "sum") -> np.ndarray:
    """Per-feature values ``(..., D)`` -> per-cell values ``(..., n_cells_r, n_cells_c)``.

    ``reduce="sum"`` sums a cell's features; ``"l2"`` takes the L2 norm over them.
    """
    p = HOGParams.create(**hog)
    ncy, ncx, nby, nbx = p.grid(int(frame_size[0]), int(frame_size[1]))
    (br, bc), n = p.cells_per_block, p.orientations
    values = np.asarray(values, dtype=np.float64)
    lead = values.shape[:-1]
    if values.shape[-1] != nby * nbx * br * bc * n:
        raise DataError(
            f"{values.shape[-1]} features do not fit HOG of a {frame_size[0]}x{frame_size[1]} frame ({hog})"
        )
    v = values.reshape(*lead, nby, nbx, br, bc, n)
    v = v**2 if reduce == "l2" else v
    v = v.sum(axis=-1)
    cells = np.zeros((*lead, ncy, ncx), dtype=np.float64)
    for a in range(br):
        for b in range(bc):
            cells[..., a : a + nby, b : b + nbx] += v[..., :, :, a, b]
    return np.sqrt(cells) if reduce == "l2" else cells


def cells_on_frame(cells: np.ndarray, hog: dict, frame_size: Sequence[int]) -> np.ndarray:
    """Cell maps ``(..., ncy, ncx)`` -> pixel maps ``(..., H, W)`` float32 of the frame: each cell's
    value repeated over its pixels; pixels right/below the last whole cell (HOG ignores them) are 0."""
    pr, pc = HOGParams.create(**hog).pixels_per_cell
    h, w = int(frame_size[0]), int(frame_size[1])
    cells = np.asarray(cells, dtype=np.float32)
    up = np.repeat(np.repeat(cells, pr, axis=-2), pc, axis=-1)
    pix = np.zeros((*cells.shape[:-2], h, w), dtype=np.float32)
    pix[..., : up.shape[-2], : up.shape[-1]] = up
    return pix


__all__ = ["cells_on_frame", "fold_cells"]
