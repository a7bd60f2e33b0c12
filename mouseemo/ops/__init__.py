"""Pure-torch numerical kernels (any device): HOG features and similarity measures.

``mouseemo.ops.hog`` is the HOG function (its parts live in the private :mod:`mouseemo.ops._hog`);
:func:`cupy_available` says whether its fused CUDA kernel (``backend="cupy"``) can run here.
:mod:`mouseemo.ops.cells` folds HOG features back onto the cells of the frame.
"""

from mouseemo.ops._hog.api import HOG, hog
from mouseemo.ops._hog.params import BLOCK_NORMS, HOGParams, check_frame_size, hog_output_size
from mouseemo.ops.cells import cells_on_frame, fold_cells

__all__ = [
    "BLOCK_NORMS",
    "HOG",
    "HOGParams",
    "cells_on_frame",
    "check_frame_size",
    "cupy_available",
    "fold_cells",
    "hog",
    "hog_output_size",
]


def cupy_available() -> bool:
    """True when cupy imports and sees a CUDA device (the fused HOG kernel's compilation is only tried
    on first use)."""
    from mouseemo.ops._hog import cupy_kernel

    return cupy_kernel.available()
