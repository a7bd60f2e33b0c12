"""Pure-torch numerical kernels (any device): HOG features and similarity measures.

``mouseemo.ops.hog`` is the HOG function (its parts live in the private :mod:`mouseemo.ops._hog`);
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
    "fold_cells",
    "hog",
    "hog_output_size",
]
