"""The CPU fast path for uint8 frames with ``transform_sqrt`` (OpenCV phase + exact re-decision).

Each target pixel gets its own four neighbours (a 3 x 3 lattice), so any square-root gradient pair
``(sqrt(a) - sqrt(b), sqrt(c) - sqrt(d))`` can be placed; with 1 x 1 cells and L1 blocks the
non-zero entry of each pixel's histogram is its bin.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mouseemo.ops import HOGParams, hog
from mouseemo.ops._hog import opencv
from mouseemo.ops._hog.bins import orientation_bins

skimage_feature = pytest.importorskip("skimage.feature")


def _pairs_by_difference() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every distinct positive sqrt(a) - sqrt(b) over uint8 a, b, with one (a, b) that makes it."""
    s = np.sqrt(np.arange(256, dtype=np.float64))
    a, b = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    d = (s[a] - s[b]).ravel()
    keep = d > 0
    d, a, b = d[keep], a.ravel()[keep], b.ravel()[keep]
    d, first = np.unique(d, return_index=True)
    return d, a[first], b[first]


def _near_edge_quads(n: int, per_edge: int = 4000, seed: int = 0) -> np.ndarray:
    """``(M, 4)`` uint8 (a, b, c, d): gradients (s[a]-s[b], s[c]-s[d]) on or next to every edge."""
    d, pa, pb = _pairs_by_difference()
    rng = np.random.default_rng(seed)
    quads = []
    for e in orientation_bins(n).edges:
        if e in (0.0, 90.0, 180.0):
            continue
        t = abs(math.tan(math.radians(e)))
        i = rng.choice(d.size, size=min(per_edge, d.size), replace=False)
        j = np.searchsorted(d, t * d[i])
        for off in (-1, 0, 1):
            k = np.clip(j + off, 0, d.size - 1)
            x_ab = np.stack([pa[i], pb[i]], 1) if e < 90 else np.stack([pb[i], pa[i]], 1)
            quads.append(np.concatenate([x_ab, np.stack([pa[k], pb[k]], 1)], 1))
    i = rng.choice(d.size, size=per_edge, replace=False)
    zero = np.zeros(per_edge, dtype=np.int64)
    lvl = rng.integers(0, 256, per_edge)
    quads += [
        np.stack([pa[i], pb[i], pa[i], pb[i]], 1),  # exactly 45 degrees
        np.stack([pb[i], pa[i], pa[i], pb[i]], 1),  # exactly 135 degrees
        np.stack([pa[i], pb[i], lvl, lvl], 1),  # on the 0 degree axis
        np.stack([lvl, lvl, pb[i], pa[i]], 1),  # on the 90 degree axis (pointing down)
        np.stack([pb[i], pa[i], zero, zero], 1),  # 180 degrees
    ]
    return np.concatenate(quads).astype(np.uint8)


def _lattice_image(quads: np.ndarray, seed: int = 0) -> np.ndarray:
    """A uint8 image with one 3 x 3 tile per quad; the tile's centre has the quad's gradient."""
    cols = 256
    rows = -(-len(quads) // cols)
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, size=(3 * rows, 3 * cols), dtype=np.uint8)
    q = np.zeros((rows * cols, 4), dtype=np.uint8)
    q[: len(quads)] = quads
    q = q.reshape(rows, cols, 4)
    img[1::3, 2::3] = q[..., 0]  # right neighbour
    img[1::3, 0::3] = q[..., 1]  # left neighbour
    img[2::3, 1::3] = q[..., 2]  # neighbour below
    img[0::3, 1::3] = q[..., 3]  # neighbour above
    return img


def _pixel_bins(img: np.ndarray, n: int, fn=hog) -> np.ndarray:
    """Per-pixel bin (-1: none) from ``fn``'s HOG with 1 x 1 cells (ours by default, or scikit-image's)."""
    h = fn(
        img,
        orientations=n,
        pixels_per_cell=(1, 1),
        cells_per_block=(1, 1),
        block_norm="L1",
        transform_sqrt=True,
        feature_vector=False,
    )
    h = h.reshape(h.shape[0], h.shape[1], n)
    out = h.argmax(-1)
    out[h.max(-1) == 0] = -1
    return out


@pytest.mark.parametrize("n", [8, 9, 12, 6])
def test_fast_path_bins_equal_general_path_near_every_edge(n, monkeypatch):
    img = _lattice_image(_near_edge_quads(n))
    t = img.astype(np.float64)
    params = HOGParams.create(n, 1, 1, "L1", True)
    assert opencv._use_uint8_sqrt_path(torch.from_numpy(img), params)
    fast = _pixel_bins(img, n)
    general = _pixel_bins(t, n)  # float64 input never takes the uint8 path
    monkeypatch.setattr(opencv, "_use_uint8_sqrt_path", lambda x, p: False)
    general_uint8 = _pixel_bins(img, n)
    assert (general == general_uint8).all()
    bad = np.argwhere(fast != general)
    assert bad.size == 0, f"{len(bad)} pixels binned differently, e.g. at {bad[:3].tolist()}"
    # scikit-image decides ties with numpy's arctan2 (its last bit depends on the CPU): so do we
    sk = _pixel_bins(img, n, fn=skimage_feature.hog)
    bad = np.argwhere(sk != fast)
    assert bad.size == 0, f"{len(bad)} pixels binned unlike scikit-image, e.g. at {bad[:3].tolist()}"


@pytest.mark.parametrize("high", [4, 256])
@pytest.mark.parametrize("ppc", [(8, 8), (7, 9), (32, 32)])
def test_fast_path_equals_general_path_and_skimage(high, ppc, monkeypatch):
    rng = np.random.default_rng(high)
    frames = rng.integers(0, high, size=(3, 100, 131), dtype=np.uint8)
    fast = hog(frames, pixels_per_cell=ppc)
    monkeypatch.setattr(opencv, "_use_uint8_sqrt_path", lambda x, p: False)
    general = hog(frames, pixels_per_cell=ppc)
    assert np.abs(fast - general).max() < 1e-9
    for i in range(len(frames)):
        ref = skimage_feature.hog(
            frames[i],
            orientations=8,
            pixels_per_cell=ppc,
            cells_per_block=(1, 1),
            block_norm="L2-Hys",
            transform_sqrt=True,
        )
        assert np.abs(fast[i] - ref).max() < 1e-6
