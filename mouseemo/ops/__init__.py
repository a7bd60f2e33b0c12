"""Pure-torch numerical kernels (any device): HOG features and similarity measures.

``mouseemo.ops.hog`` is the HOG function (its parts live in the private :mod:`mouseemo.ops._hog`).
"""

from mouseemo.ops._hog.api import HOG, hog
from mouseemo.ops._hog.params import BLOCK_NORMS, HOGParams, check_frame_size, hog_output_size

__all__ = ["BLOCK_NORMS", "HOG", "HOGParams", "check_frame_size", "hog", "hog_output_size"]
