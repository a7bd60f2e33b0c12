"""HOG's less travelled paths against scikit-image: the general path for uint8 square-root frames
when OpenCV's ``phase`` is not used, CPU results under torch's deterministic mode, and the helpers
of the exact bin rule (the search over doubles, numpy's bins of wider inputs)."""

import math

import numpy as np
import pytest
import torch

from mouseemo.errors import ConfigError, DataError
from mouseemo.ops import HOGParams, check_frame_size, hog
from mouseemo.ops._hog.bins import _RAD2DEG, _first_double, numpy_bins
from tests.test_core_hog import _job, check, frames, fresh_tables, skimage_bin  # noqa: F401 - fresh_tables is autouse


@pytest.mark.parametrize("orientations", [8, 9, 7])
def test_uint8_square_root_frames_without_opencv_phase_match_skimage(monkeypatch, orientations):
    """Where OpenCV's ``phase`` fails its accuracy check, uint8 frames with ``transform_sqrt`` take
    the general tiles (square roots from the table, float64 gradients), not the uint8 lookup table
    of frames without square root."""
    import mouseemo.ops._hog.opencv as opencv

    monkeypatch.setattr(opencv, "_phase_error_ok", lambda: False)
    x = frames("uint8", n=2)
    assert not opencv._use_uint8_sqrt_path(torch.from_numpy(x), HOGParams.create(orientations))
    check(x, orientations=orientations, ppc=(8, 8), cpb=(2, 2), sqrt=True)
    t = hog(torch.from_numpy(x), orientations, 8, 2, "L2-Hys", True)
    assert t.dtype == torch.float32
    np.testing.assert_allclose(t.numpy(), hog(x, orientations, 8, 2, "L2-Hys", True), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kind, sqrt", [("float64", True), ("uint8", False), ("int16", True)])
def test_cpu_results_do_not_depend_on_deterministic_mode(kind, sqrt):
    """CPU tiles add each cell's pixels in one order whatever torch's deterministic setting (the
    per-bin sums of deterministic mode stand in for CUDA's atomics): the same features bit for bit."""
    x = frames(kind, n=2, shape=(96, 128), seed=3)
    ref = check(x, orientations=9, ppc=(16, 16), cpb=(2, 2), norm="L1", sqrt=sqrt)
    ref_t = hog(torch.from_numpy(x), 9, 16, 2, "L1", sqrt, chunk_size=2)
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        got = hog(x, 9, 16, 2, "L1", sqrt)
        got_t = hog(torch.from_numpy(x), 9, 16, 2, "L1", sqrt, chunk_size=2)
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
    np.testing.assert_array_equal(got, ref)
    assert got_t.dtype == ref_t.dtype and torch.equal(got_t, ref_t)


def test_first_double_is_a_binary_search_over_doubles():
    """The smallest double in ``[lo, hi]`` with a monotone predicate, in at most 64 probes (one per
    bit of the doubles' ordering key), also across zero and when ``lo == hi``."""
    probes = []

    def counted(predicate):
        def probe(a):
            probes.append(a)
            assert len(probes) <= 64, "more probes than a binary search over 64-bit keys makes"
            return predicate(a)

        return probe

    cases = [
        (lambda a: a * _RAD2DEG >= 22.5, math.ulp(0.0), math.pi),
        (lambda a: a * _RAD2DEG + 180.0 >= 135.0, -math.pi, -math.ulp(0.0)),
        (lambda a: a >= -3e-310, -1.0, 1.0),
        (lambda a: a >= 0.25, 0.25, 0.5),
    ]
    for predicate, lo, hi in cases:
        probes.clear()
        t = _first_double(counted(predicate), lo, hi)
        assert lo <= t <= hi and predicate(t)
        assert t == lo or not predicate(math.nextafter(t, -math.inf))
    assert _first_double(lambda a: a * _RAD2DEG >= 22.5, math.ulp(0.0), math.pi) == math.radians(22.5)
    probes.clear()
    assert _first_double(counted(lambda a: True), 2.0, 2.0) == 2.0
    assert len(probes) == 0


def test_numpy_bins_reads_gradients_as_float64():
    """Wider inputs are rounded to float64 first, as scikit-image's gradients are float64: a long
    double gradient a hair off the 45 or 135 degree edge is an exact tie there in float64 (the
    upper bin)."""
    if np.finfo(np.longdouble).nmant <= np.finfo(np.float64).nmant:
        pytest.skip("long double is float64 on this machine")
    one = np.longdouble(1)
    hair = one + np.longdouble(2) ** -60
    gx = np.array([hair, one, -hair, one, hair], dtype=np.longdouble)
    gy = np.array([one, hair, one, -hair, -one], dtype=np.longdouble)
    assert (gx != np.round(gx)).any()  # the hair survives in long double
    got = numpy_bins(gx, gy, 8)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, [2, 2, 6, 6, 6])
    np.testing.assert_array_equal(got, numpy_bins(gx.astype(np.float64), gy.astype(np.float64), 8))
    # any shape in, flat bins out
    flat = numpy_bins(gx[:4].reshape(2, 2), gy[:4].reshape(2, 2), 8)
    assert flat.shape == (4,)
    np.testing.assert_array_equal(flat, got[:4])


def test_uint8_square_root_frames_take_the_opencv_path_for_usual_orientation_counts():
    """``K`` fine steps per bin exist for every orientation count up to 360: a power of two with
    half a step (``90 / (K n)`` degrees) above twice OpenCV's phase error bound, below the axis gap
    less that margin, and int16 codes ``2 n K`` (so uint8 square-root CPU frames take the OpenCV path)."""
    import mouseemo.ops._hog.opencv as opencv

    for n in range(1, 361):
        k = opencv._fine_steps(n)
        assert k is not None and k & (k - 1) == 0, n
        half = 90.0 / (k * n)
        assert 1.5 * opencv._PHASE_TOL < half < opencv._AXIS_GAP - 1.5 * opencv._PHASE_TOL, n
        assert 2 * n * k < 6000
    assert opencv._fine_steps(8) == 256 and opencv._fine_steps(9) == 256 and opencv._fine_steps(360) == 8
    assert opencv._fine_steps(4000) is None  # steps finer than the phase error: the general path
    assert opencv._fine_steps(3010) is None  # K = 1: half a step is 0.0299 degrees
    x = torch.zeros(2, 64, 64, dtype=torch.uint8)
    assert opencv._use_uint8_sqrt_path(x, HOGParams.create())
    assert not opencv._use_uint8_sqrt_path(x, HOGParams.create(transform_sqrt=False))
    assert not opencv._use_uint8_sqrt_path(x.to(torch.int16), HOGParams.create())
    assert not opencv._use_uint8_sqrt_path(x, HOGParams.create(orientations=4000))


def test_tensor_dtypes_without_arithmetic_are_refused():
    """Sub-byte integer tensors (torch's shell dtypes) hold no values HOG can difference."""
    for name in ("uint3", "int4", "uint1"):
        dtype = getattr(torch, name, None)
        if dtype is None:
            continue
        with pytest.raises(DataError, match=f"images must hold real numbers; got dtype torch.{name}$"):
            hog(torch.zeros(64, 64, dtype=dtype))


def skimage_gradients(images):
    """scikit-image's ``(gx, gy)`` of ``(B, H, W)`` images in their dtype, as float64: central
    differences, zero on the border columns (gx) and rows (gy)."""
    gx, gy = np.zeros_like(images), np.zeros_like(images)
    gx[:, :, 1:-1] = images[:, :, 2:] - images[:, :, :-2]
    gy[:, 1:-1] = images[:, 2:] - images[:, :-2]
    return gx.astype(np.float64), gy.astype(np.float64)


@pytest.mark.parametrize("orientations", [9, 7])
@pytest.mark.parametrize(
    "kind, sqrt",
    [("float64", False), ("float64", True), ("float32", True), ("int16", False), ("huge", False)],
)
def test_one_pixel_cells_hold_the_magnitude_in_the_skimage_bin(kind, sqrt, orientations):
    """Cells of one pixel: each cell holds that pixel's magnitude (``hypot`` of scikit-image's
    gradients, float32 images differenced in float32; also for gradients near 1e200, whose squares
    overflow) in the slot of scikit-image's formula (slot ``n``: in no bin), every other slot 0."""
    from mouseemo.ops._hog.tiling import _histograms_cpu

    x = frames(kind, n=2, shape=(20, 23), seed=11) if kind != "huge" else frames("float64") * 1e200
    img = x.astype(np.float32 if kind == "float32" else np.float64)
    img = np.sqrt(img) if sqrt else img
    gx, gy = skimage_gradients(img)
    expected = np.zeros((*img.shape, orientations + 1))
    slot = skimage_bin(gx.ravel(), gy.ravel(), orientations).reshape(img.shape)
    np.put_along_axis(expected, slot[..., None], np.hypot(gx, gy)[..., None], axis=-1)
    t = torch.from_numpy(x)
    got = _histograms_cpu(t, _job(t, orientations, (1, 1), sqrt), 1, *x.shape[1:])
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), expected, rtol=4e-16, atol=0)


@pytest.mark.parametrize("shape", [(16, 2), (16, 3), (2, 16), (3, 16)])
def test_narrow_uint8_square_root_frames_match_skimage(shape):
    """Frames two or three pixels across (OpenCV path): no inner column or row, or just one."""
    ppc = tuple(s if s < 4 else 4 for s in shape)
    x = frames("uint8", n=2, shape=(24, 24), seed=12)[:, : shape[0], : shape[1]]
    check(np.ascontiguousarray(x), ppc=ppc, cpb=(1, 1), sqrt=True)
    check(np.ascontiguousarray(x), orientations=7, ppc=ppc, cpb=(1, 1), sqrt=True)


def test_error_messages_name_the_argument():
    with pytest.raises(ConfigError, match=r"^pixels_per_cell must be positive; got 0$"):
        check_frame_size(32, 32, 0)
    with pytest.raises(
        ConfigError, match=r"^pixels_per_cell must be a positive int or a pair of them; got 'a'$"
    ):
        check_frame_size(32, 32, "a")
    with pytest.raises(
        DataError, match=r"^transform_sqrt=True needs non-negative images; found negative values$"
    ):
        hog(np.full((64, 64), -1.0))


@pytest.mark.parametrize("orientations", [8, 6, 9])
def test_huge_gradients_leave_the_near_ties_of_their_tile_to_numpy(orientations):
    """Ramps spread over ulps around every edge, beside a patch of gradients near 1e200 in the same
    tile (their squares overflow, and so do the near-tie tests that use them): every other pixel's
    near tie is still decided by numpy's arctan2, as scikit-image."""
    from mouseemo.ops._hog.tiling import _histograms_cpu

    r, c = np.meshgrid(np.arange(24), np.arange(24), indexing="ij")
    ramps = []
    for k in range(1, orientations):
        a = np.radians(180.0 / orientations * k)
        for scale in (1.0, 0.37):
            ramps.append(0.5 * scale * (np.cos(a) * c + np.sin(a) * r))
            ramps[-1][20:, 20:] = np.arange(16).reshape(4, 4) * 1e200
    x = np.stack(ramps)
    gx, gy = skimage_gradients(x)
    slot = skimage_bin(gx.ravel(), gy.ravel(), orientations).reshape(x.shape)
    t = torch.from_numpy(x)
    got = _histograms_cpu(t, _job(t, orientations, (1, 1), False), 1, 24, 24).numpy()
    moving = np.hypot(gx, gy) > 0
    np.testing.assert_array_equal(got.argmax(-1)[moving], slot[moving])


def test_small_tiles_of_two_frames_match_skimage(monkeypatch):
    """``chunk_size=2`` with tiles of three cells: each tile holds the same rows of two frames, down
    to the frames' last row; the features are those of one frame at a time."""
    import mouseemo.ops._hog.tiling as tiling

    monkeypatch.setattr(tiling, "_TILE_PIXELS", 400)
    monkeypatch.setattr(tiling, "_TILE_PIXELS_PER_THREAD", 400)
    for kind, sqrt in (("float64", True), ("uint8", False), ("float32", False)):
        x = frames(kind, n=3, shape=(32, 40), seed=14)
        ours = check(x, ppc=(8, 8), cpb=(2, 2), sqrt=sqrt)
        np.testing.assert_array_equal(hog(x, 8, 8, 2, "L2-Hys", sqrt, chunk_size=2), ours)


@pytest.mark.parametrize("kind", ["float64", "uint8"])
def test_one_column_tiles_down_to_the_frames_last_column(monkeypatch, kind):
    """Cells one pixel wide and tiles of one cell: the last tile is the frame's last column alone,
    whose horizontal gradient is zero (a buffer left from the previous tile must not leak in)."""
    import mouseemo.ops._hog.tiling as tiling

    monkeypatch.setattr(tiling, "_TILE_PIXELS", 1)
    monkeypatch.setattr(tiling, "_TILE_PIXELS_PER_THREAD", 1)
    x = frames(kind, n=2, shape=(24, 25), seed=11)
    check(x, orientations=9, ppc=(4, 1), cpb=(1, 1), sqrt=False)
