"""HOG against scikit-image's ``hog`` on synthetic and real frames, for every setting that changes
the arithmetic (dtype, square root, orientations, cells, blocks, block norms), plus the exact
orientation-bin rule against scikit-image's formula."""

import numpy as np
import pytest
import torch

from mouseemo.errors import ConfigError, DataError
from mouseemo.ops import BLOCK_NORMS, HOG, HOGParams, check_frame_size, hog, hog_output_size
from mouseemo.ops._hog.bins import exact_bins, numpy_bins, orientation_bins

skimage_feature = pytest.importorskip("skimage.feature")


@pytest.fixture(autouse=True)
def fresh_tables():
    """Rebuild the cached HOG tables in every test, so that each test checks how they are built and
    not only what an earlier test left in the cache."""
    import mouseemo.ops._hog.bins as bins
    import mouseemo.ops._hog.index as index
    import mouseemo.ops._hog.opencv as opencv
    import mouseemo.ops._hog.tiling as tiling

    for module in (bins, index, opencv, tiling):
        for value in vars(module).values():
            if callable(getattr(value, "cache_clear", None)):
                value.cache_clear()


def sk_hog(frame, orientations=8, ppc=(32, 32), cpb=(1, 1), norm="L2-Hys", sqrt=True):
    return skimage_feature.hog(
        frame,
        orientations=orientations,
        pixels_per_cell=ppc,
        cells_per_block=cpb,
        block_norm=norm,
        transform_sqrt=sqrt,
        feature_vector=True,
    )


def frames(kind, n=2, shape=(37, 45), seed=0):
    rng = np.random.default_rng(seed)
    if kind == "uint8":
        x = rng.integers(0, 256, (n, *shape)).astype(np.uint8)
        x[:, 2:10, 3:12] = 100  # flat patches and exact 45/90-degree ties
        x[:, 12:22, 14:24] = np.add.outer(np.arange(10), np.arange(10)) * 7
        return x
    if kind == "levels":  # few gray levels: many exact ties on the 0/45/90/135 edges
        return (rng.integers(0, 4, (n, *shape)) * 60).astype(np.uint8)
    if kind == "float64":
        return rng.random((n, *shape))
    if kind == "float32":
        return rng.random((n, *shape)).astype(np.float32)
    if kind == "int16":
        return rng.integers(0, 3000, (n, *shape)).astype(np.int16)
    if kind == "uint16":
        return rng.integers(0, 60000, (n, *shape)).astype(np.uint16)
    raise AssertionError(kind)


def check(images, *, rtol=2e-6, **kw):
    ours = hog(images, kw.get("orientations", 8), kw.get("ppc", (32, 32)), kw.get("cpb", (1, 1)),
               kw.get("norm", "L2-Hys"), kw.get("sqrt", True))  # fmt: skip
    assert isinstance(ours, np.ndarray)
    ref = np.stack([sk_hog(f, **kw) for f in images])
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=1e-6)
    return ours


@pytest.mark.parametrize("kind", ["uint8", "levels", "float64", "float32", "int16", "uint16"])
@pytest.mark.parametrize("sqrt", [True, False])
def test_matches_skimage_per_dtype(kind, sqrt):
    x = frames(kind)
    out = check(x, ppc=(8, 8), cpb=(2, 2), sqrt=sqrt)
    assert out.dtype == (np.float32 if kind == "float32" else np.float64)


@pytest.mark.parametrize("norm", BLOCK_NORMS)
@pytest.mark.parametrize("kind", ["uint8", "float64"])
def test_matches_skimage_per_block_norm(norm, kind):
    check(frames(kind, n=1), ppc=(6, 7), cpb=(2, 3), norm=norm, sqrt=kind == "uint8")


@pytest.mark.parametrize("orientations", [1, 2, 3, 4, 5, 6, 7, 9, 11, 12, 13])
@pytest.mark.parametrize("kind, sqrt", [("levels", False), ("uint8", True), ("float64", False)])
def test_matches_skimage_per_orientation_count(orientations, kind, sqrt):
    check(frames(kind, n=1, shape=(24, 30)), orientations=orientations, ppc=(4, 5), cpb=(1, 2), sqrt=sqrt)


def test_cells_that_do_not_fit_are_dropped_and_defaults():
    x = frames("uint8", n=2, shape=(70, 99))
    ours = hog(x)
    np.testing.assert_allclose(ours, np.stack([sk_hog(f) for f in x]), rtol=2e-6, atol=1e-6)
    assert ours.shape == (2, hog_output_size(70, 99)) == (2, 2 * 3 * 8)


def test_tensor_in_tensor_out_and_shapes():
    x = frames("uint8", n=3, shape=(32, 48))
    ref = np.stack([sk_hog(f, ppc=(8, 8), cpb=(2, 2)) for f in x])
    t = hog(torch.from_numpy(x), pixels_per_cell=8, cells_per_block=2)
    assert torch.is_tensor(t) and t.dtype == torch.float32 and t.shape == (3, 3 * 5 * 2 * 2 * 8)
    np.testing.assert_allclose(t.numpy(), ref, rtol=1e-5, atol=1e-6)
    t64 = hog(torch.from_numpy(x.astype(np.float64)), pixels_per_cell=8, cells_per_block=2)
    assert t64.dtype == torch.float64
    one = hog(x[0], pixels_per_cell=8, cells_per_block=2)
    assert one.shape == (3 * 5 * 2 * 2 * 8,)
    np.testing.assert_allclose(one, ref[0], rtol=2e-6, atol=1e-6)
    grid = hog(x, pixels_per_cell=8, cells_per_block=2, feature_vector=False)
    assert grid.shape == (3, 3, 5, 2, 2, 8)
    np.testing.assert_array_equal(grid.reshape(3, -1), hog(x, pixels_per_cell=8, cells_per_block=2))
    empty = hog(np.zeros((0, 32, 48), np.uint8), pixels_per_cell=8)
    assert empty.shape == (0, 4 * 6 * 8)
    # chunking does not change values
    np.testing.assert_array_equal(hog(x, pixels_per_cell=8, chunk_size=2), hog(x, pixels_per_cell=8))
    # bool images count as 0/1
    b = frames("levels", n=1, shape=(16, 16))[0] > 60
    np.testing.assert_allclose(
        hog(b, pixels_per_cell=8, transform_sqrt=False),
        sk_hog(b.astype(np.uint8), ppc=(8, 8), sqrt=False),
        rtol=2e-6,
        atol=1e-6,
    )
    # big-endian input is read by value
    f = frames("float64", n=1, shape=(16, 16))
    np.testing.assert_array_equal(hog(f.astype(">f8"), pixels_per_cell=8), hog(f, pixels_per_cell=8))


def test_float16_and_wide_integers():
    f16 = frames("float32", n=1, shape=(16, 24)).astype(np.float16)
    out = hog(f16, pixels_per_cell=8)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0], sk_hog(f16[0], ppc=(8, 8)), rtol=1e-5, atol=1e-6)
    u32 = frames("uint16", n=1, shape=(16, 24)).astype(np.uint32) * 1000
    np.testing.assert_allclose(
        hog(u32, pixels_per_cell=8, transform_sqrt=False)[0],
        sk_hog(u32[0], ppc=(8, 8), sqrt=False),
        rtol=2e-6,
        atol=1e-6,
    )
    u64 = u32.astype(np.uint64)
    np.testing.assert_allclose(
        hog(u64, pixels_per_cell=8)[0], sk_hog(u64[0], ppc=(8, 8)), rtol=2e-6, atol=1e-6
    )
    neg = frames("int16", n=1, shape=(16, 24)) - 1500
    np.testing.assert_allclose(
        hog(neg, pixels_per_cell=8, transform_sqrt=False)[0],
        sk_hog(neg[0], ppc=(8, 8), sqrt=False),
        rtol=2e-6,
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "kind, sqrt, norm",
    [
        ("uint8", True, "L2-Hys"),
        ("uint8", False, "L1"),
        ("float64", False, "L2"),
        ("float32", True, "L2-Hys"),
    ],
)
def test_full_size_frames_match_skimage(kind, sqrt, norm):
    """Frames large enough to be cut into several tiles and to need more than one cached index."""
    x = frames(kind, n=2, shape=(480, 640), seed=3)
    check(x, ppc=(16, 16), cpb=(2, 2), sqrt=sqrt, norm=norm, rtol=5e-6)


def test_faint_images_keep_the_block_epsilon():
    """A block of tiny gradients: eps = 1e-5 is not negligible beside its norm."""
    x = frames("float64", n=1, shape=(32, 32), seed=4) * 1e-5
    for norm in BLOCK_NORMS:
        check(x, ppc=(8, 8), cpb=(2, 2), sqrt=False, norm=norm, rtol=1e-9)


def test_module_form():
    m = HOG(orientations=6, pixels_per_cell=(8, 6), cells_per_block=2, block_norm="L1", transform_sqrt=False)
    x = frames("uint8", n=2, shape=(24, 30))
    np.testing.assert_array_equal(
        m(torch.from_numpy(x)).numpy(), hog(torch.from_numpy(x), 6, (8, 6), 2, "L1", False).numpy()
    )
    assert m.output_size(24, 30) == 2 * 4 * 2 * 2 * 6
    assert repr(m) == (
        "HOG(orientations=6, pixels_per_cell=(8, 6), cells_per_block=(2, 2), block_norm='L1', "
        "transform_sqrt=False, feature_vector=True)"
    )
    assert HOG(feature_vector=False)(torch.zeros(1, 64, 64, dtype=torch.uint8)).shape == (1, 2, 2, 1, 1, 8)
    ramp = np.zeros((1, 64, 64), np.uint8)
    ramp[0, :, :32] = np.arange(32) * 8  # a horizontal ramp beside a vertical one: sqrt changes the mix
    ramp[0, :, 32:] = np.arange(64)[:, None] * 2
    x = torch.from_numpy(ramp)
    torch.testing.assert_close(HOG()(x), hog(x), rtol=0, atol=0)
    assert not torch.equal(HOG()(x), hog(x, transform_sqrt=False))


def test_errors():
    x = np.zeros((1, 64, 64), np.uint8)
    with pytest.raises(ConfigError, match="^chunk_size must be a positive int or None; got 0$"):
        hog(x, chunk_size=0)
    with pytest.raises(ConfigError, match="^chunk_size must be a positive int or None; got True$"):
        hog(x, chunk_size=True)
    with pytest.raises(ConfigError, match=r"chunk_size .* got 1.5"):
        hog(x, chunk_size=1.5)
    with pytest.raises(ConfigError, match="^backend must be one of auto, torch, cupy; got 'gpu'$"):
        hog(x, backend="gpu")
    with pytest.raises(ConfigError, match="^backend='cupy' needs a CUDA tensor$"):
        hog(x, backend="cupy")
    with pytest.raises(
        DataError, match=r"^images must be \(H, W\) or \(B, H, W\); got shape \(1, 1, 64, 64\)$"
    ):
        hog(x[None])
    with pytest.raises(DataError, match="^images must be a torch.Tensor or a numpy.ndarray; got list$"):
        hog([[1, 2]])
    with pytest.raises(DataError, match="^images must hold real numbers; got a numpy array of dtype <U1$"):
        hog(np.array([["a"]]))
    with pytest.raises(DataError, match="^images must hold real numbers; got dtype torch.complex64$"):
        hog(torch.zeros(64, 64, dtype=torch.complex64))
    with pytest.raises(DataError, match="^images contain NaN or infinite values$"):
        hog(np.full((64, 64), np.inf))
    with pytest.raises(DataError, match="^transform_sqrt=True needs non-negative images"):
        hog(np.full((64, 64), -1.0))
    hog(np.full((64, 64), -1.0), transform_sqrt=False)
    with pytest.raises(ConfigError, match=r"a 20x64 \(h x w\) frame is smaller than one HOG block"):
        hog(np.zeros((20, 64)))
    for kw, msg in [
        ({"orientations": 0}, "orientations must be positive; got 0"),
        ({"orientations": True}, "orientations must be a positive int; got True"),
        ({"orientations": 2.0}, "orientations must be a positive int; got 2.0"),
        ({"block_norm": "L3"}, "block_norm must be one of L1, L1-sqrt, L2, L2-Hys; got 'L3'"),
        ({"transform_sqrt": 1}, "transform_sqrt must be a bool; got 1"),
        ({"pixels_per_cell": 0}, r"pixels_per_cell must be positive; got 0"),
        ({"pixels_per_cell": (8, -1)}, r"pixels_per_cell must be positive; got \(8, -1\)"),
        ({"pixels_per_cell": (0, 8)}, r"pixels_per_cell must be positive; got \(0, 8\)"),
        ({"pixels_per_cell": (8, 8, 8)}, r"pixels_per_cell must be a positive int or a pair of them"),
        ({"pixels_per_cell": (8, True)}, r"pixels_per_cell must be a positive int or a pair"),
        ({"pixels_per_cell": 8.0}, r"pixels_per_cell must be a positive int or a pair of them; got 8.0"),
        ({"cells_per_block": True}, r"cells_per_block must be a positive int or a pair"),
        ({"cells_per_block": (1, 0)}, r"cells_per_block must be positive"),
    ]:
        with pytest.raises(ConfigError, match=msg):
            HOGParams.create(**kw)


def test_params_and_sizes():
    p = HOGParams.create(9, (8, 6), 2, "L1", False)
    assert p == HOGParams(9, (8, 6), (2, 2), "L1", False)
    assert HOGParams.create() == HOGParams(8, (32, 32), (1, 1), "L2-Hys", True)
    assert p.grid(33, 25) == (4, 4, 3, 3)
    assert p.output_shape(33, 25) == (3, 3, 2, 2, 9)
    assert p.output_size(33, 25) == 3 * 3 * 2 * 2 * 9
    assert HOGParams.create(pixels_per_cell=np.array([4, 5])).pixels_per_cell == (4, 5)
    assert HOGParams.create(orientations=np.int64(3)).orientations == 3
    assert hog_output_size(480, 640) == 2400
    assert hog_output_size(64, 96, 9, 16, (2, 3)) == 3 * 4 * 2 * 3 * 9
    check_frame_size(32, 32)
    check_frame_size(16, 24, 8, (2, 3))
    with pytest.raises(
        ConfigError,
        match=r"it needs at least 16x32 pixels \(cells_per_block=\(2, 4\), pixels_per_cell=\(8, 8\)\)",
    ):
        check_frame_size(16, 31, 8, (2, 4))
    with pytest.raises(ConfigError, match=r"^cells_per_block must be positive; got 0$"):
        check_frame_size(32, 32, 8, 0)
    with pytest.raises(ConfigError, match=r"a 15x64 \(h x w\) frame"):
        check_frame_size(15, 64, 8, 2)
    with pytest.raises(ConfigError):
        HOGParams.create(pixels_per_cell=8, cells_per_block=2).grid(16, 15)


def skimage_bin(gx, gy, n):
    theta = np.rad2deg(np.arctan2(gy, gx)) % 180
    edges = 180.0 / n * np.arange(n + 1)
    return np.array([next((i for i in range(n) if edges[i] <= t < edges[i + 1]), n) for t in theta])


@pytest.mark.parametrize("n", [1, 2, 3, 4, 6, 7, 8, 9, 12])
def test_exact_and_numpy_bins_follow_skimage(n):
    rng = np.random.default_rng(n)
    g = rng.integers(-40, 41, (2, 3000)).astype(np.float64)
    g = np.concatenate([g, rng.normal(size=(2, 3000)) * 10.0 ** rng.integers(-3, 4, 3000)], axis=1)
    ref = skimage_bin(g[0], g[1], n)
    np.testing.assert_array_equal(numpy_bins(g[0], g[1], n), ref)
    exact = exact_bins(torch.from_numpy(g[0]), torch.from_numpy(g[1]), orientation_bins(n)).numpy()
    assert exact.dtype == np.int64
    np.testing.assert_array_equal(exact, ref)
    assert exact_bins(torch.zeros(3, dtype=torch.float64), torch.zeros(3), orientation_bins(n)).tolist() == [
        0,
        0,
        0,
    ]


def test_orientation_bins_constants():
    b8 = orientation_bins(8)
    assert b8.n == 8 and b8.symmetric and b8.has_45
    assert b8.edges == tuple(22.5 * k for k in range(1, 8))
    assert [k for k, _ in b8.low] == ["tan", "45", "cot"] and b8.num_irrational_low == 2
    assert b8.low[0][1] == pytest.approx(np.tan(np.pi / 8), rel=1e-15)
    assert b8.low[2][1] == pytest.approx(np.tan(np.pi / 8), rel=1e-15)
    b7 = orientation_bins(7)
    assert not b7.has_45 and not b7.symmetric and b7.num_irrational_low == 3
    assert [k for k, _ in b7.low] == ["tan", "cot", "cot"]
    assert orientation_bins(4).num_irrational_low == 0 and orientation_bins(4).edges == (45.0, 90.0, 135.0)


def real_frames(real_data_dir, folder):
    cv2 = pytest.importorskip("cv2")
    paths = sorted((real_data_dir / folder).glob("*.png"))[:2]
    if not paths:
        pytest.skip(f"no frames in {folder}")
    return np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)[:160, :224] for p in paths])


@pytest.mark.parametrize("folder", ["facemap_face_frames", "dlc_reaching_face_frames"])
@pytest.mark.parametrize(
    "sqrt, ppc, cpb, norm", [(True, 32, 1, "L2-Hys"), (False, 16, 2, "L2-Hys"), (True, 16, 3, "L1-sqrt")]
)
def test_real_frames_match_skimage(real_data_dir, folder, sqrt, ppc, cpb, norm):
    x = real_frames(real_data_dir, folder)
    check(x, ppc=(ppc, ppc), cpb=(cpb, cpb), sqrt=sqrt, norm=norm)
    check(x.astype(np.float64) / 255.0, ppc=(ppc, ppc), cpb=(cpb, cpb), sqrt=sqrt, norm=norm)


def _job(x, orientations, ppc, sqrt, reduce="scatter"):
    from mouseemo.ops._hog.tiling import _Job

    params = HOGParams.create(orientations, ppc, 1, "L2-Hys", sqrt)
    if x.dtype == torch.uint8 and not sqrt:
        mode = "lut"
    else:
        mode = "f32" if x.dtype == torch.float32 else "f64"
    return _Job(
        params, orientation_bins(orientations), x.shape[1], x.shape[2], mode, reduce, False, rowwise=False
    )


@pytest.mark.parametrize("reduce", ["scatter", "perbin"])
@pytest.mark.parametrize(
    "orientations, kind, sqrt, shape",
    [
        (9, "float64", True, (400, 400)),
        (8, "uint8", True, (400, 400)),
        (7, "float32", False, (64, 72)),
        (8, "uint8", False, (400, 400)),
        (6, "levels", False, (64, 72)),
        (9, "float32", True, (64, 72)),
    ],
)
def test_whole_chunk_path_matches_cpu_tiles(reduce, orientations, kind, sqrt, shape):
    """The GPU's path (whole chunks of frames, square roots in the chunk, whole-buffer sign tests,
    broadcast cell indices above the cache size, optionally the per-bin reduction of deterministic
    mode) run on CPU tensors gives the CPU tiles' cell sums."""
    from mouseemo.ops._hog.tiling import _histograms_cpu, _histograms_torch_device

    x = torch.from_numpy(frames(kind, n=2, shape=shape, seed=5))
    job = _job(x, orientations, (16, 16), sqrt, reduce)
    ncy, ncx = shape[0] // 16, shape[1] // 16
    ref = _histograms_cpu(x, _job(x, orientations, (16, 16), sqrt), 1, ncy, ncx)
    for chunk in (1, 2):
        got = _histograms_torch_device(x, job, chunk, ncy, ncx)
        assert got.shape == ref.shape and got.dtype == torch.float64
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-9)


def test_tiles_cover_the_grid_within_the_budget():
    from mouseemo.ops._hog.tiling import _tiles

    # whole rows of cells while they fit (a row of 5 cells of 8x8 is 320 pixels), per frame of the chunk
    assert _tiles(3, 5, 8, 8, 1, 400) == [(0, 1, 0, 5), (1, 2, 0, 5), (2, 3, 0, 5)]
    assert _tiles(3, 5, 8, 8, 2, 1300) == [(0, 2, 0, 5), (2, 3, 0, 5)]
    # else runs of cells in one row: 3 cells of 64 pixels fit in 200
    assert _tiles(2, 5, 8, 8, 1, 200) == [(0, 1, 0, 3), (0, 1, 3, 5), (1, 2, 0, 3), (1, 2, 3, 5)]
    assert _tiles(1, 3, 8, 4, 4, 1) == [(0, 1, 0, 1), (0, 1, 1, 2), (0, 1, 2, 3)]


@pytest.mark.parametrize("pixels", [1, 200])
@pytest.mark.parametrize(
    "kind, sqrt, orientations", [("uint8", False, 8), ("float64", True, 9), ("float32", False, 7)]
)
def test_small_tiles_match_skimage(monkeypatch, pixels, kind, sqrt, orientations):
    """Tiles of one to three cells (gradients across tile seams, the frame's last column and row)."""
    import mouseemo.ops._hog.tiling as tiling

    monkeypatch.setattr(tiling, "_TILE_PIXELS", pixels)
    monkeypatch.setattr(tiling, "_TILE_PIXELS_PER_THREAD", pixels)
    for shape in ((37, 45), (32, 40)):
        x = frames(kind, n=2, shape=shape, seed=6)
        check(x, orientations=orientations, ppc=(8, 8), cpb=(2, 2), sqrt=sqrt)


def test_normalize_blocks_refuses_an_unknown_norm():
    from mouseemo.ops._hog.tiling import normalize_blocks

    with pytest.raises(ConfigError, match=r"^block_norm must be one of L1, L1-sqrt, L2, L2-Hys; got 'L3'$"):
        normalize_blocks(torch.ones(1, 2, 2, 8), (1, 1), "L3")
    with pytest.raises(
        ConfigError, match=r"^cells_per_block must be a positive int or a pair of them; got True$"
    ):
        check_frame_size(32, 32, 8, True)


def test_very_faint_images_keep_the_second_epsilon():
    """L2-Hys renormalises the clipped block with eps too: with gradients of 1e-10 it dominates."""
    x = frames("float64", n=1, shape=(32, 32), seed=4) * 1e-10
    check(x, ppc=(8, 8), cpb=(2, 2), sqrt=False, norm="L2-Hys", rtol=1e-9)


def _ramp(gx, gy, shape=(24, 24)):
    """A float64 frame whose central differences are (about) ``(gx, gy)`` everywhere inside."""
    r, c = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    return 1000.0 + 0.5 * gx * c + 0.5 * gy * r


@pytest.mark.parametrize("orientations", [7, 9, 8])
def test_ramps_on_the_bin_edges_match_skimage(orientations):
    """Gradients within rounding of every edge k * 180 / n (near ties on the generic and symmetric paths)."""
    ramps = []
    for k in range(1, orientations):
        a = np.radians(180.0 / orientations * k)
        for scale in (1.0, 3.0):
            ramps.append(_ramp(scale * np.cos(a), scale * np.sin(a)))
            ramps.append(_ramp(-scale * np.cos(a), -scale * np.sin(a)))
    x = np.stack(ramps)
    check(x, orientations=orientations, ppc=(8, 8), cpb=(1, 1), sqrt=False, norm="L1", rtol=1e-12)


def _correctly_rounded_bins(gx, gy, n):
    """scikit-image's bin rule with a correctly rounded arctan2 (mpmath), the rule of exact_bins."""
    mpmath = pytest.importorskip("mpmath")
    with mpmath.workprec(300):
        a = np.array(
            [float(mpmath.atan2(mpmath.mpf(float(y)), mpmath.mpf(float(x)))) for x, y in zip(gx, gy)]
        )
    theta = np.remainder(np.rad2deg(a), 180.0)
    edges = np.array([180.0 / n * k for k in range(1, n + 1)])
    return np.searchsorted(edges, theta, side="right")


@pytest.mark.parametrize("n", [7, 8, 9])
def test_exact_bins_within_an_ulp_of_the_edges(n):
    """Gradients whose angle lies within a few ulps of every edge, in all four quadrants, and angles
    that round to 180 degrees (bin 0): exact_bins follows the correctly rounded rule."""
    gx, gy = [], []
    for k in range(1, n):
        a = np.radians(180.0 / n * k)
        for scale in (1.0, 3.0, 1e-3):
            y0 = np.tan(a) * scale
            for j in range(-12, 13):
                y = y0
                for _ in range(abs(j)):
                    y = np.nextafter(y, np.inf if j > 0 else -np.inf)
                for sx in (1.0, -1.0):
                    gx.append(sx * scale)
                    gy.append(sx * y)
    # subnormal gradients (scaled up by a power of two beyond 2**1000 first)
    for x, y in [(3e-310, 1e-310), (-5e-320, 2e-320), (1e-321, -4e-322), (2e-310, 5e-310)]:
        gx.append(x)
        gy.append(y)
    for x, y in [(-1.0, 1e-17), (-1.0, -1e-17), (-3.0, 2e-16), (-1.0, 3e-16), (1.0, 1e-300)]:
        gx.append(x)
        gy.append(y)
    gx, gy = np.array(gx), np.array(gy)
    ref = _correctly_rounded_bins(gx, gy, n)
    got = exact_bins(torch.from_numpy(gx), torch.from_numpy(gy), orientation_bins(n)).numpy()
    np.testing.assert_array_equal(got, ref)
    assert got[-5] == 0 and got[-4] == 0


def test_exact_bins_of_many_pixels_in_pieces():
    rng = np.random.default_rng(8)
    g = torch.from_numpy(rng.integers(-30, 31, (2, 30000)).astype(np.float64))
    out = exact_bins(g[0].view(100, 300), g[1].view(100, 300), orientation_bins(9))
    assert out.shape == (100, 300)
    np.testing.assert_array_equal(out.reshape(-1).numpy(), skimage_bin(g[0].numpy(), g[1].numpy(), 9))


@pytest.mark.parametrize("orientations", [9, 10, 7])
def test_ramps_spread_over_ulps_of_the_edges_match_skimage(orientations):
    """Ramps without an offset: rounding spreads their gradients over a few ulps around each edge, so
    that the sign tests and numpy's arctan2 disagree on some pixels unless every near tie is re-decided."""
    ramps = []
    for k in range(1, orientations):
        a = np.radians(180.0 / orientations * k)
        for scale in (1.0, 0.37, 5.0):
            gx, gy = scale * np.cos(a), scale * np.sin(a)
            r, c = np.meshgrid(np.arange(24), np.arange(24), indexing="ij")
            ramps.append(0.5 * gx * c + 0.5 * gy * r)
    x = np.stack(ramps)
    check(x, orientations=orientations, ppc=(8, 8), cpb=(1, 1), sqrt=False, norm="L1", rtol=1e-12)


class _IdleCores:
    @staticmethod
    def cores():
        return 0.0


def test_two_threads_on_idle_cores_match_skimage(monkeypatch):
    """Two torch threads and no other load: whole-buffer tiles and uint8 runs split over threads."""
    import mouseemo.ops._hog.tiling as tiling

    monkeypatch.setattr(tiling, "_OTHER_LOAD", _IdleCores())
    monkeypatch.setattr(tiling.os, "cpu_count", lambda: 2)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        check(frames("uint8", n=4), ppc=(8, 8), cpb=(2, 2), sqrt=True)  # runs of 2 frames
        check(frames("float64", n=2), orientations=9, ppc=(8, 8), cpb=(2, 2), sqrt=True)
        check(frames("levels", n=2), orientations=10, ppc=(8, 8), cpb=(1, 1), sqrt=False)
    finally:
        torch.set_num_threads(threads)


def test_many_cells_and_one_pixel_cells_match_skimage(monkeypatch):
    """More (cell, bin) slots than int16 holds (uint8 square-root path), and one-row tiles at the
    frame's last row (cells of one pixel row)."""
    x = frames("uint8", n=1, shape=(90, 92), seed=9)
    check(x, ppc=(2, 2), cpb=(1, 1), sqrt=True)
    import mouseemo.ops._hog.tiling as tiling

    monkeypatch.setattr(tiling, "_TILE_PIXELS", 1)
    monkeypatch.setattr(tiling, "_TILE_PIXELS_PER_THREAD", 1)
    check(frames("float64", n=1, shape=(13, 16), seed=9), ppc=(1, 4), cpb=(1, 1), sqrt=False)
