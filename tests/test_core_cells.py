"""Exact values of HOG cell folding: per-feature values onto cells, cells onto pixels."""

import numpy as np
import pytest

from mouseemo.errors import DataError
from mouseemo.ops import HOGParams
from mouseemo.ops.cells import cells_on_frame, fold_cells

HOG = {"orientations": 2, "pixels_per_cell": (2, 3), "cells_per_block": (2, 1)}
FRAME = (7, 10)  # 3 x 3 cells (the last row and column of pixels are dropped), 2 x 3 blocks


def reference_fold(values, reduce):
    """Loop over every feature of the skimage layout and add it to its cell."""
    p = HOGParams.create(**HOG)
    ncy, ncx, nby, nbx = p.grid(*FRAME)
    br, bc = p.cells_per_block
    v = values.reshape(-1, nby, nbx, br, bc, p.orientations)
    out = np.zeros((v.shape[0], ncy, ncx))
    for n in range(v.shape[0]):
        for i in range(nby):
            for j in range(nbx):
                for a in range(br):
                    for b in range(bc):
                        for o in range(p.orientations):
                            x = v[n, i, j, a, b, o]
                            out[n, i + a, j + b] += x**2 if reduce == "l2" else x
    return np.sqrt(out) if reduce == "l2" else out


@pytest.mark.parametrize("reduce", ["sum", "l2"])
def test_fold_cells_against_loops(reduce):
    d = 2 * 3 * 2 * 1 * 2
    values = np.random.default_rng(1).normal(size=(4, d))
    out = fold_cells(values, HOG, FRAME, reduce=reduce)
    assert out.shape == (4, 3, 3)
    np.testing.assert_allclose(out, reference_fold(values, reduce), rtol=1e-12)
    # leading axes are kept; one vector works alone
    np.testing.assert_allclose(fold_cells(values[0], HOG, FRAME, reduce=reduce), out[0], rtol=1e-12)


def test_fold_cells_two_by_two_blocks_count_overlaps():
    hog = {"orientations": 1, "pixels_per_cell": 1, "cells_per_block": 2}
    out = fold_cells(np.ones(2 * 3 * 4), hog, (3, 4))
    np.testing.assert_array_equal(out, [[1, 2, 2, 1], [2, 4, 4, 2], [1, 2, 2, 1]])


def test_fold_cells_wrong_length():
    with pytest.raises(DataError, match="23 features do not fit HOG of a 7x10 frame"):
        fold_cells(np.zeros(23), HOG, FRAME)


def test_cells_on_frame_repeats_cells_and_zeroes_the_rest():
    cells = np.arange(9, dtype=np.float64).reshape(3, 3)
    pix = cells_on_frame(cells[None], HOG, FRAME)
    assert pix.dtype == np.float32 and pix.shape == (1, 7, 10)
    expected = np.zeros((7, 10), dtype=np.float32)
    for r in range(6):
        for c in range(9):
            expected[r, c] = cells[r // 2, c // 3]
    np.testing.assert_array_equal(pix[0], expected)


def test_fold_cells_computes_in_float64_whatever_comes_in():
    """Integer input is not squared in int64 (2**32 squared would wrap to 0)."""
    hog = {"orientations": 1, "pixels_per_cell": 1, "cells_per_block": 1}
    out = fold_cells(np.array([[2**32, 0]]), hog, (1, 2), reduce="l2")
    np.testing.assert_array_equal(out, [[[2.0**32, 0.0]]])
