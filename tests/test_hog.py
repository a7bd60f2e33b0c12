"""mouseemo.ops.hog (mouseemo.ops._hog) against scikit-image: bin rule, parity, batching, bad input, GPU paths, CLI."""

from __future__ import annotations

import math
import warnings

import cv2
import numpy as np
import pytest
import torch
from helpers import skimage_bins, write_video

from mouseemo.errors import ConfigError, DataError
from mouseemo.ops import HOG, HOGParams, check_frame_size, hog, hog_output_size
from mouseemo.ops._hog import api, cupy_kernel, index, tiling
from mouseemo.ops._hog.bins import exact_bins, orientation_bins
from mouseemo.ops._hog.index import _cell_slots, _index_generic, _index_symmetric, _sign_code
from mouseemo.ops._hog.load import _OTHER_LOAD

skimage_feature = pytest.importorskip("skimage.feature")
sk_hog = skimage_feature.hog

TOL = 1e-6  # the contract: scikit-image accumulates cells in float32, we in float64
# GPU vs CPU: same bins, float64 sums in another order (~1e-16), so float32 outputs may differ by an ulp
GPU_TOL = 2e-7


def face_like(shape, seed=0, sigma=2.5, lo=10, hi=240):
    """Smoothed noise with a face-like dynamic range, uint8."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape).astype(np.float32)
    if x.ndim == 2:
        x = cv2.GaussianBlur(x, (0, 0), sigma)
    else:
        x = np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in x])
    x = (x - x.min()) / (x.max() - x.min())
    return (lo + (hi - lo) * x).astype(np.uint8)


def reference(image, orientations=8, ppc=32, cpb=1, norm="L2-Hys", sqrt=True, fv=True):
    ppc = (ppc, ppc) if isinstance(ppc, int) else ppc
    cpb = (cpb, cpb) if isinstance(cpb, int) else cpb
    return sk_hog(image, orientations, ppc, cpb, norm, transform_sqrt=sqrt, feature_vector=fv)


# ------------------------------------------------------------------------------------------------
# The bin rule
# ------------------------------------------------------------------------------------------------


def fast_path_bins(gx: torch.Tensor, gy: torch.Tensor, n: int) -> torch.Tensor:
    """Bins from the per-tile fast path (each pixel its own 1 x 1 cell)."""
    bins = orientation_bins(n)
    size = gx.numel()
    q = (gx * gx + gy * gy).view(1, 1, size)
    m = q.sqrt()
    if bins.symmetric:
        buf = torch.empty((_sign_code(n).rows, 1, 1, size), dtype=torch.float64)
        buf[-2, 0, 0], buf[-1, 0, 0] = gx, gy
        idx = _index_symmetric(buf, q, m, bins, 1, 1, size, 1, 1, False, False)
    else:
        cell = _cell_slots(1, 1, size, 1, 1, n + 1, torch.device("cpu"))
        idx = _index_generic(gx.view(1, 1, size), gy.view(1, 1, size), m, bins, cell)
    return idx % (n + 1)


@pytest.mark.parametrize("n", [8, 6, 9, 12, 7])
def test_bin_rule_all_integer_gradients(n):
    """Every (gx, gy) in [-255, 255]^2 (all uint8 gradients without sqrt) lands in scikit-image's bin.

    For integer gradients only the 0/45/90/135 degree edges can be hit exactly (the others have
    irrational slopes), and there scikit-image's rounded angle is exactly the edge (upper bin).
    """
    g = torch.arange(-255, 256, dtype=torch.float64)
    gy, gx = (t.reshape(-1) for t in torch.meshgrid(g, g, indexing="ij"))
    ref = skimage_bins(gx.numpy(), gy.numpy(), n)
    nonzero = ref >= 0
    assert nonzero.sum() == gx.numel() - 1  # only the zero vector has no bin
    for name, got in [
        ("exact", exact_bins(gx, gy, orientation_bins(n))),
        ("fast", fast_path_bins(gx, gy, n)),
    ]:
        got = got.numpy()
        bad = np.flatnonzero(got[nonzero] != ref[nonzero])
        assert bad.size == 0, (
            f"{name}: {bad.size} pixels differ, e.g. {gx[nonzero][bad[:3]]}, {gy[nonzero][bad[:3]]}"
        )


def test_bin_rule_ties_go_up():
    """Gradients exactly on the 0/45/90/135 edges (float values, not just integers) take the upper bin."""
    v = torch.tensor([0.3, 1.0, 7.25, math.sqrt(2.0), 1e-3, 123.456], dtype=torch.float64)
    z = torch.zeros_like(v)
    cases = {  # (gx, gy) -> bin for n = 8
        0: [(v, z), (-v, z)],
        2: [(v, v), (-v, -v)],
        4: [(z, v), (z, -v)],
        6: [(-v, v), (v, -v)],
    }
    for expected, pairs in cases.items():
        for gx, gy in pairs:
            assert (exact_bins(gx, gy, orientation_bins(8)) == expected).all()
            assert (fast_path_bins(gx, gy, 8) == expected).all()
            # the fast paths decide these by comparisons: numpy's arctan2 must agree (it does, with
            # SIMD or without; scikit-image follows it)
            assert (skimage_bins(gx.numpy(), gy.numpy(), 8) == expected).all()


def _sqrt_near_ties(n: int, rel: float = 1e-11) -> tuple[np.ndarray, np.ndarray]:
    """All pairs of square-root gradients (uint8 input, transform_sqrt) within ``rel`` of an edge."""
    s = np.sqrt(np.arange(256, dtype=np.float64))
    g = np.unique(s[:, None] - s[None, :])
    g = g[g > 0]
    edges = orientation_bins(n).edges
    xs, ys = [], []
    for e in edges:
        if e in (45.0, 90.0, 135.0):  # rational: ties are exact comparisons, covered elsewhere
            continue
        t = math.tan(math.radians(e))
        target = abs(t) * g
        j = np.searchsorted(g, target)
        for off in (-1, 0):
            k = np.clip(j + off, 0, g.size - 1)
            close = np.abs(g[k] - target) <= rel * g
            gx = g[close] * (1 if t > 0 else -1)
            xs.append(gx)
            ys.append(g[k][close])
    gx, gy = np.concatenate(xs), np.concatenate(ys)
    return np.concatenate([gx, -gx]), np.concatenate([gy, -gy])  # both half planes


@pytest.mark.parametrize("n", [8, 12, 9, 7])
def test_bin_rule_square_root_near_ties(n):
    """Square-root gradients can sit on irrational edges (e.g. (sqrt(12) - 3) / sqrt(3) = tan 15).

    There scikit-image's answer is decided by the last bit of numpy's ``arctan2``, which depends on
    the CPU's SIMD; the fast path sends these pixels to numpy and so agrees with the installed
    scikit-image. ``exact_bins`` is scikit-image's formula with a correctly rounded ``arctan2``
    (checked here with 200-bit arithmetic); scikit-image differs from it only where numpy's own
    ``arctan2`` is not correctly rounded.
    """
    mpmath = pytest.importorskip("mpmath")
    # for n = 7 no pair comes within 1e-11 of an edge: test the closest ones
    gx, gy = _sqrt_near_ties(n, 1e-11 if orientation_bins(n).symmetric else 1e-6)
    assert gx.size > 0
    mpmath.mp.prec = 200
    atan2 = np.array(
        [
            float(mpmath.atan2(mpmath.mpf(y), mpmath.mpf(x)))
            for x, y in zip(gx.tolist(), gy.tolist(), strict=True)
        ]
    )
    truth = _skimage_formula(atan2, n)
    tx, ty = torch.from_numpy(gx), torch.from_numpy(gy)
    np.testing.assert_array_equal(exact_bins(tx, ty, orientation_bins(n)).numpy(), truth)
    sk = skimage_bins(gx, gy, n)
    np.testing.assert_array_equal(fast_path_bins(tx, ty, n).numpy(), sk)
    numpy_atan2 = np.arctan2(gy, gx)
    assert (numpy_atan2[sk != truth] != atan2[sk != truth]).all()


def _skimage_formula(atan2: np.ndarray, n: int) -> np.ndarray:
    theta = np.rad2deg(atan2) % 180
    edges = (180.0 / n) * np.arange(1, n + 1)
    return (theta[:, None] >= edges[None, :]).sum(1)


def test_bin_rule_float_images_near_rational_edges():
    """Float images in [0, 1] (uint8 / 255) make equal gradients differ by an ulp; with a correctly
    rounded arctan2 they sit on the 45/90/135 degree edge (upper bin). The fast path follows the
    installed scikit-image (numpy's arctan2) there, the exact rule the correctly rounded value."""
    v = np.arange(1, 256) / 255.0
    pairs = (v[:, None] - v[None, :]).ravel()
    g = pairs[pairs > 0]
    a = np.repeat(g[:4000], 8)
    b = np.tile(g[np.random.default_rng(0).integers(0, g.size, 8)], 4000)
    close = np.abs(a - b) < 1e-15
    gx, gy = np.concatenate([a[close], -a[close]]), np.concatenate([b[close], b[close]])
    assert gx.size > 100
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.prec = 200
    atan2 = np.array([float(mpmath.atan2(mpmath.mpf(y), mpmath.mpf(x))) for x, y in zip(gx, gy, strict=True)])
    truth = _skimage_formula(atan2, 8)
    got = fast_path_bins(torch.from_numpy(gx), torch.from_numpy(gy), 8).numpy()
    np.testing.assert_array_equal(got, skimage_bins(gx, gy, 8))
    np.testing.assert_array_equal(
        exact_bins(torch.from_numpy(gx), torch.from_numpy(gy), orientation_bins(8)), truth
    )


def test_exact_bins_shapes_and_zero_vector():
    out = exact_bins(torch.zeros(3), torch.zeros(3), orientation_bins(8))
    assert out.dtype == torch.int64 and out.tolist() == [0, 0, 0]
    assert orientation_bins(8).symmetric and not orientation_bins(7).symmetric


# ------------------------------------------------------------------------------------------------
# Parity with skimage.feature.hog
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", ["L1", "L1-sqrt", "L2", "L2-Hys"])
@pytest.mark.parametrize("sqrt", [True, False])
@pytest.mark.parametrize("cpb", [(1, 1), (2, 2), (3, 2)])
def test_parity_block_norms(norm, sqrt, cpb):
    img = face_like((101, 135), seed=1)  # not a multiple of the cell size
    ref = reference(img, 9, 16, cpb, norm, sqrt)
    out = hog(img, 9, 16, cpb, norm, sqrt)
    assert out.dtype == ref.dtype and out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=0, atol=TOL)


@pytest.mark.parametrize("n", [6, 8, 9, 12, 7, 1, 2])
@pytest.mark.parametrize("ppc", [7, 8, 16, 32, (8, 12)])
def test_parity_orientations_and_cells(n, ppc):
    img = face_like((97, 131), seed=n, sigma=1.5)
    for sqrt in (True, False):
        np.testing.assert_allclose(
            hog(img, n, ppc, 1, transform_sqrt=sqrt), reference(img, n, ppc, 1, sqrt=sqrt), atol=TOL
        )


def test_parity_default_config_video_frame():
    img = face_like((480, 640), seed=3)
    out = hog(torch.from_numpy(img))
    assert out.shape == (2400,) and out.dtype == torch.float32
    np.testing.assert_allclose(out.double().numpy(), reference(img), atol=TOL)


@pytest.mark.parametrize(
    "dtype,scale",
    [
        (np.float32, 1 / 255),
        (np.float32, 1.0),
        (np.float64, 1 / 255),
        (np.uint16, 257),
        (np.float16, 1 / 255),
    ],
)
def test_parity_dtypes(dtype, scale):
    img = (face_like((70, 90), seed=4).astype(np.float64) * scale).astype(dtype)
    for sqrt in (True, False):
        ref = reference(img, 8, 8, 2, "L2-Hys", sqrt)
        out = hog(img, 8, 8, 2, "L2-Hys", sqrt)
        assert out.dtype == ref.dtype, (out.dtype, ref.dtype)  # numpy in -> scikit-image's dtype
        np.testing.assert_allclose(out, ref, atol=TOL)


@pytest.mark.parametrize("sqrt", [True, False])
def test_float_noise_images_match_the_rule_exactly(sqrt):
    """Noise in [0, 1] (uint8 / 255) puts many gradients within an ulp of 45/135 degrees, where the
    installed scikit-image follows its numpy's arctan2 (not correctly rounded with AVX-512 SIMD).
    Against a float64 re-implementation with scikit-image's own per-pixel bins we agree to 1e-12;
    where those bins differ from a correctly rounded arctan2 (200-bit), numpy's is off by an ulp."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.prec = 200
    img = np.random.default_rng(4).integers(0, 256, (48, 64)).astype(np.float64) / 255
    f = np.sqrt(img) if sqrt else img
    gr, gc = np.zeros_like(f), np.zeros_like(f)
    gr[1:-1], gc[:, 1:-1] = f[2:] - f[:-2], f[:, 2:] - f[:, :-2]
    atan2 = np.array(
        [
            float(mpmath.atan2(mpmath.mpf(y), mpmath.mpf(x)))
            for x, y in zip(gc.ravel(), gr.ravel(), strict=True)
        ]
    )
    b = skimage_bins(gc.ravel(), gr.ravel(), 8).reshape(f.shape)
    assert (b >= 0).all() or (np.hypot(gc, gr)[b < 0] == 0).all()
    b = np.maximum(b, 0)
    cell = (np.arange(48)[:, None] // 8) * 8 + np.arange(64)[None, :] // 8
    hist = np.bincount((cell * 8 + b).ravel(), weights=np.hypot(gc, gr).ravel(), minlength=6 * 8 * 8) / 64
    v = hist.reshape(6 * 8, 8)
    v = v / np.sqrt((v**2).sum(-1, keepdims=True) + 1e-10)
    v = np.minimum(v, 0.2)
    v = v / np.sqrt((v**2).sum(-1, keepdims=True) + 1e-10)
    np.testing.assert_allclose(hog(img, 8, 8, 1, transform_sqrt=sqrt), v.ravel(), rtol=0, atol=1e-12)
    truth = np.minimum(_skimage_formula(atan2, 8), 7)
    differ = (truth != b.ravel()) & (np.hypot(gc, gr).ravel() > 0)
    assert (np.arctan2(gr.ravel(), gc.ravel())[differ] != atan2[differ]).all()


def test_parity_signed_integers_without_sqrt():
    img = face_like((64, 80), seed=5).astype(np.int16) - 128
    np.testing.assert_allclose(
        hog(img, 8, 8, 2, transform_sqrt=False), reference(img, 8, 8, 2, sqrt=False), atol=TOL
    )


def test_feature_vector_off_layout():
    img = face_like((100, 140), seed=6)
    ref = reference(img, 8, 16, (3, 2), "L2-Hys", True, fv=False)
    out = hog(img, 8, 16, (3, 2), feature_vector=False)
    assert out.shape == ref.shape == (4, 7, 3, 2, 8)
    np.testing.assert_allclose(out, ref, atol=TOL)
    batch = hog(torch.from_numpy(np.stack([img, img])), 8, 16, (3, 2), feature_vector=False)
    assert batch.shape == (2, 4, 7, 3, 2, 8)


def test_matches_float64_reference_closely():
    """Against a plain float64 re-implementation (no float32 cell sums) the agreement is ~1e-15."""
    img = face_like((96, 128), seed=7)
    f = img.astype(np.float64)
    gr = np.zeros_like(f)
    gc = np.zeros_like(f)
    gr[1:-1] = f[2:] - f[:-2]
    gc[:, 1:-1] = f[:, 2:] - f[:, :-2]
    b = skimage_bins(gc.ravel(), gr.ravel(), 8).reshape(f.shape)
    mag = np.hypot(gc, gr)
    cell = (np.arange(96)[:, None] // 16) * 8 + np.arange(128)[None, :] // 16
    hist = np.bincount((cell * 8 + np.maximum(b, 0)).ravel(), weights=mag.ravel(), minlength=6 * 8 * 8)
    hist = hist.reshape(6, 8, 8) / 256
    v = hist / np.sqrt((hist**2).sum(-1, keepdims=True) + 1e-10)
    v = np.minimum(v, 0.2)
    v = v / np.sqrt((v**2).sum(-1, keepdims=True) + 1e-10)
    np.testing.assert_allclose(hog(img, 8, 16, 1, transform_sqrt=False), v.ravel(), atol=1e-13)


# ------------------------------------------------------------------------------------------------
# Batches, types, module, threads
# ------------------------------------------------------------------------------------------------


def test_batch_equals_per_frame_and_chunking_is_invisible():
    frames = torch.from_numpy(face_like((5, 90, 120), seed=8))
    per_frame = torch.stack([hog(f, 8, 16, 2) for f in frames])
    for chunk in (None, 1, 2, 5):
        torch.testing.assert_close(hog(frames, 8, 16, 2, chunk_size=chunk), per_frame, rtol=0, atol=1e-12)
    assert hog(frames[:0], 8, 16, 2).shape == (0, per_frame.shape[1])


def test_whole_frame_path_equals_tiles(monkeypatch):
    """The GPU layout (whole frames per step, broadcast index tensors, per-bin reduction) on the CPU."""
    frames = torch.from_numpy(face_like((3, 96, 130), seed=18))
    for n, sqrt, dtype in [
        (8, True, torch.uint8),
        (9, False, torch.uint8),
        (7, True, torch.float32),
        (12, True, torch.uint8),
    ]:
        x = frames.to(dtype)
        expected = hog(x, n, 16, 2, transform_sqrt=sqrt)
        params = HOGParams.create(n, 16, 2, "L2-Hys", sqrt)
        mode = "lut" if dtype == torch.uint8 and not sqrt else ("f32" if dtype == torch.float32 else "f64")
        monkeypatch.setattr(index, "_MAX_CACHED_INDEX", 1000)
        for reduce in ("scatter", "perbin"):
            job = tiling._Job(
                params,
                orientation_bins(n),
                96,
                130,
                mode,
                reduce,
                dtype == torch.uint8,
                rowwise=False,
            )
            hist = tiling._histograms_torch_device(x, job, 2, 6, 8)[..., :n] / 256
            got = tiling.normalize_blocks(hist, (2, 2), "L2-Hys").reshape(3, -1).float()
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-7)
        monkeypatch.undo()


def test_threads_and_load_do_not_change_the_result(monkeypatch):
    """Single-threaded small tiles, multi-threaded big tiles (chosen by the load on the cores) and one
    torch thread give bit-identical results."""
    frames = torch.from_numpy(face_like((3, 200, 260), seed=9))
    threads = torch.get_num_threads()
    results = []
    try:
        for num_threads, busy in [(1, 0.0), (max(2, threads), 0.0), (max(2, threads), 99.0)]:
            torch.set_num_threads(num_threads)
            monkeypatch.setattr(_OTHER_LOAD, "cores", lambda busy=busy: busy)
            results.append(hog(frames, 8, 8))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(results[0], results[1]) and torch.equal(results[0], results[2])


def test_output_types_follow_the_input():
    img = face_like((64, 64), seed=10)
    assert isinstance(hog(img, pixels_per_cell=16), np.ndarray)
    assert hog(img, pixels_per_cell=16).dtype == np.float64
    t = torch.from_numpy(img)
    assert hog(t, pixels_per_cell=16).dtype == torch.float32
    assert hog(t.double(), pixels_per_cell=16).dtype == torch.float64
    assert hog(t.float(), pixels_per_cell=16).dtype == torch.float32
    assert hog(t.half(), pixels_per_cell=16).dtype == torch.float32
    assert hog(t.bool(), pixels_per_cell=16).shape == (128,)
    np.testing.assert_allclose(hog(t, pixels_per_cell=16).numpy(), hog(img, pixels_per_cell=16), atol=1e-7)


def test_inference_mode_and_requires_grad_inputs():
    t = torch.from_numpy(face_like((2, 64, 96), seed=11))
    expected = hog(t, pixels_per_cell=16)
    with torch.inference_mode():
        torch.testing.assert_close(hog(t.clone(), pixels_per_cell=16), expected)
    x = t.double().requires_grad_()
    out = hog(x, pixels_per_cell=16)
    assert not out.requires_grad
    torch.testing.assert_close(out.float(), expected)


def test_module_equals_function():
    frames = torch.from_numpy(face_like((2, 80, 100), seed=12))
    m = HOG(orientations=9, pixels_per_cell=(8, 12), cells_per_block=2, block_norm="L1")
    torch.testing.assert_close(m(frames), hog(frames, 9, (8, 12), 2, "L1"))
    assert m.output_size(80, 100) == m(frames).shape[1] == hog_output_size(80, 100, 9, (8, 12), 2)
    assert "orientations=9" in repr(m)


def test_output_size_and_frame_check():
    assert hog_output_size(480, 640) == 2400
    assert hog_output_size(100, 130, 9, 16, (3, 2)) == 4 * 7 * 3 * 2 * 9
    check_frame_size(32, 32)
    with pytest.raises(ConfigError, match="smaller than one HOG block"):
        check_frame_size(31, 640)
    with pytest.raises(ConfigError):
        hog_output_size(64, 64, 8, 32, 3)


# ------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,err",
    [
        (dict(block_norm="L3"), ConfigError),
        (dict(orientations=0), ConfigError),
        (dict(orientations=2.5), ConfigError),
        (dict(pixels_per_cell=0), ConfigError),
        (dict(pixels_per_cell=(8, -1)), ConfigError),
        (dict(pixels_per_cell=(8, 8, 8)), ConfigError),
        (dict(cells_per_block=(0, 1)), ConfigError),
        (dict(backend="opencl"), ConfigError),
        (dict(backend="cupy"), ConfigError),  # CPU tensor
        (dict(chunk_size=0), ConfigError),
    ],
)
def test_bad_parameters(kwargs, err):
    with pytest.raises(err):
        hog(torch.zeros(64, 64, dtype=torch.uint8), **kwargs)


def test_bad_images():
    with pytest.raises(ConfigError, match="smaller than one HOG block"):
        hog(torch.zeros(31, 100, dtype=torch.uint8))
    for shape in [(100,), (2, 3, 64, 64)]:
        with pytest.raises(DataError, match=r"\(H, W\) or \(B, H, W\)"):
            hog(torch.zeros(shape, dtype=torch.uint8))
    x = torch.rand(64, 64)
    for bad in (float("nan"), float("inf")):
        y = x.clone()
        y[3, 4] = bad
        with pytest.raises(DataError, match="NaN or infinite"):
            hog(y)
    with pytest.raises(DataError, match="non-negative"):
        hog(x - 0.5)
    hog(x - 0.5, transform_sqrt=False)  # fine without the square root
    with pytest.raises(DataError):
        hog(torch.zeros(64, 64, dtype=torch.complex64))
    with pytest.raises(DataError):
        hog([[0] * 64] * 64)


# ------------------------------------------------------------------------------------------------
# GPU (skipped without CUDA)
# ------------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize(
    "n,ppc,cpb,norm", [(8, 32, 1, "L2-Hys"), (9, 7, (3, 2), "L1-sqrt"), (7, (8, 12), 2, "L2")]
)
def test_gpu_torch_equals_cpu(n, ppc, cpb, norm):
    frames = torch.from_numpy(face_like((6, 120, 160), seed=13))
    for x in (frames, frames.float() / 255):
        cpu = hog(x, n, ppc, cpb, norm)
        gpu = hog(x.cuda(), n, ppc, cpb, norm, backend="torch")
        assert gpu.is_cuda and gpu.dtype == cpu.dtype
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=GPU_TOL)


@pytest.mark.gpu
def test_gpu_bins_equal_cpu_bins_on_near_ties():
    gx, gy = (torch.from_numpy(a) for a in _sqrt_near_ties(12))
    bins = orientation_bins(12)
    assert torch.equal(exact_bins(gx.cuda(), gy.cuda(), bins).cpu(), exact_bins(gx, gy, bins))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float64, torch.int16])
@pytest.mark.parametrize(
    "n,ppc,cpb,norm,sqrt",
    [(8, 32, 1, "L2-Hys", True), (12, 8, 2, "L1", False), (7, (8, 12), (3, 2), "L1-sqrt", True)],
)
def test_gpu_fused_equals_cpu(dtype, n, ppc, cpb, norm, sqrt):
    pytest.importorskip("cupy")
    if not cupy_kernel.available():
        pytest.skip("cupy sees no device")
    frames = torch.from_numpy(face_like((5, 130, 170), seed=14)).to(dtype)
    if dtype.is_floating_point:
        frames = frames / 255
    cpu = hog(frames, n, ppc, cpb, norm, sqrt)
    fused = hog(frames.cuda(), n, ppc, cpb, norm, sqrt, backend="cupy")
    torch.testing.assert_close(fused.cpu(), cpu, rtol=0, atol=GPU_TOL)


@pytest.mark.gpu
def test_gpu_fused_near_tie_bins():
    """Frames built so that many pixels have square-root gradients on the 15/75 degree edges."""
    pytest.importorskip("cupy")
    tile = np.zeros((4, 4), dtype=np.uint8)
    # pixel (1, 1): gx = sqrt(3) - sqrt(0), gy = sqrt(12) - sqrt(9), gy / gx = 2 - sqrt(3) = tan 15 deg
    tile[1, 2], tile[1, 0], tile[2, 1], tile[0, 1] = 3, 0, 12, 9
    img = np.tile(tile, (16, 16))
    x = torch.from_numpy(np.stack([img, img.T]))
    cpu = hog(x, 12, 8, 1)
    torch.testing.assert_close(hog(x.cuda(), 12, 8, 1, backend="cupy").cpu(), cpu, rtol=0, atol=GPU_TOL)
    torch.testing.assert_close(hog(x.cuda(), 12, 8, 1, backend="torch").cpu(), cpu, rtol=0, atol=GPU_TOL)


@pytest.mark.gpu
def test_gpu_auto_falls_back_when_the_kernel_fails(monkeypatch):
    def broken(*args, **kwargs):
        raise cupy_kernel.CupyUnavailable("test")

    monkeypatch.setattr(cupy_kernel, "available", lambda: True)
    monkeypatch.setattr(cupy_kernel, "hog_cupy", broken)
    monkeypatch.setattr(api, "_WARNED_FALLBACK", False)
    x = torch.from_numpy(face_like((2, 64, 64), seed=15))
    with pytest.warns(UserWarning, match="using the torch path"):
        out = hog(x.cuda())
    torch.testing.assert_close(out.cpu(), hog(x), rtol=0, atol=GPU_TOL)
    with pytest.raises(ConfigError):
        hog(x.cuda(), backend="cupy")


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------


def test_cli_hog_writes_features(tmp_path):
    from mouseemo.cli import main
    from mouseemo.data.video import VideoReader

    video = write_video(tmp_path / "face.mp4", face_like((11, 100, 140), seed=16))
    out = tmp_path / "feats.npy"
    args = ["hog", str(video), "--out", str(out), "--batch-size", "4", "--quiet"]
    assert main([*args, "--pixels-per-cell", "16", "--crop", "4,2,130,96", "--cells-per-block", "2"]) == 0
    feats = np.load(out)
    with VideoReader(video, crop=(4, 2, 130, 96)) as vr:
        frames = vr.read()
    assert feats.dtype == np.float32 and feats.shape == (11, hog_output_size(96, 130, 8, 16, 2))
    ref = np.stack([reference(f, 8, 16, 2) for f in frames])
    np.testing.assert_allclose(feats, ref, atol=TOL)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_cli_hog_bad_input_writes_nothing(tmp_path, capsys):
    from mouseemo.cli import main

    out = tmp_path / "feats.npy"
    assert main(["hog", str(tmp_path / "missing.mp4"), "--out", str(out)]) == 2
    assert "video not found" in capsys.readouterr().err
    video = write_video(tmp_path / "face.mp4", face_like((3, 48, 64), seed=17))
    assert main(["hog", str(video), "--out", str(out), "--crop", "0,0,20,20"]) == 2
    assert "smaller than one HOG block" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.mp4"]


def test_no_warnings_on_cpu():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hog(torch.zeros(64, 64, dtype=torch.uint8))
