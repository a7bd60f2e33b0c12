"""Pure-torch numerical kernels (any device): HOG features and similarity measures."""

from mouseemo.ops.hog import HOG, check_frame_size, hog, hog_output_size

__all__ = ["HOG", "check_frame_size", "hog", "hog_output_size"]
