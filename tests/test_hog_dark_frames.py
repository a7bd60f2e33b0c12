"""Dark IR frames (pixel values 0..3) put many gradients exactly on bin edges after the square root:
(1, sqrt(2) - 1) lies on 22.5 degrees. scikit-image decides them in float64; so must we."""

import numpy as np
import pytest

from mouseemo.ops import hog

skimage_feature = pytest.importorskip("skimage.feature")


@pytest.mark.parametrize("high", [2, 3, 5])
@pytest.mark.parametrize("sqrt", [True, False])
def test_dark_frames_match_skimage(high, sqrt):
    rng = np.random.default_rng(high)
    img = rng.integers(0, high, size=(96, 128)).astype(np.uint8)
    for x in (img, img.astype(np.float64), img.astype(np.float32)):
        ref = skimage_feature.hog(
            x,
            orientations=8,
            pixels_per_cell=(16, 16),
            cells_per_block=(1, 1),
            block_norm="L2-Hys",
            transform_sqrt=sqrt,
        )
        ours = hog(x, pixels_per_cell=(16, 16), transform_sqrt=sqrt)
        assert np.abs(ours - ref).max() < 1e-6, x.dtype
