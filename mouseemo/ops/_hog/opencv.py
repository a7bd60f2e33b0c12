"""CPU fast path for uint8 frames with ``transform_sqrt``: OpenCV + numpy, frame by frame.

The gradients are those of the general path, bit for bit: square roots from a table of
correctly rounded float64 values, float64 differences (exact subtractions of those doubles).
The bin is first read off OpenCV's ``phase`` (a float32 polynomial atan2, max error 0.0096
degrees, checked at first use by `_phase_error_ok`) and then made exact (see the notes below).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor

from mouseemo.ops._hog.bins import _TIE_TOL, OrientationBins, numpy_bins, orientation_bins
from mouseemo.ops._hog.index import _index_generic, _sign_code
from mouseemo.ops._hog.params import HOGParams

# How the bin is made exact:
#
# * With ``D = K n / 180`` fine steps per degree (``K`` a power of two, so ``90 / (K n)`` lies in
#   (_PHASE_TOL, _AXIS_GAP - _PHASE_TOL)), ``v = round(phase * D)`` is an integer and edge ``j`` sits
#   at ``v = jK``. If ``v mod K != 0`` the exact angle lies at least ``0.5 / D - _PHASE_TOL`` degrees
#   inside bin ``floor(v / K) mod n`` (scikit-image's rule cannot disagree there).
# * ``v mod K == 0`` on an axis edge (0, 90, 180, 270, 360 degrees): the exact angle is within
#   ``0.5 / D + _PHASE_TOL`` < ``_AXIS_GAP`` of the axis. A uint8 square-root gradient that is not on
#   an axis is at least atan((sqrt(255) - sqrt(254)) / sqrt(255)) = 0.112 degrees (``_AXIS_GAP``)
#   away from it, so the pixel is an exact tie on the axis (a zero component), where ``phase`` is exact
#   (0, 90, 180, 270) and ``v / K`` is the upper bin, as the rule says.
# * Every other ``v mod K == 0`` pixel (near 45/135 degrees or an irrational edge: ~1.5% of a face
#   frame, mostly exact 45-degree ties) is re-decided by the sign tests of the general path
#   (`_bins_symmetric_np`; `_index_generic` for asymmetric edge sets), near ties with numpy's
#   arctan2 (`numpy_bins`), as scikit-image.
#
# Cell sums are one ``np.bincount`` per frame over ``cell * (2n + 2) + floor(v / K)`` (angles in
# [0, 360) fold onto [0, 180) afterwards; slot 2n is 360 = bin 0, slot 2n + 1 collects pixels in no
# bin). Magnitudes are OpenCV's ``sqrt(gx^2 + gy^2)`` in float64 (within 1 ulp of ``hypot``).

#: Bound on OpenCV's ``phase`` error (degrees) that the bin decision relies on (measured: 0.0096).
_PHASE_TOL = 0.02
#: Smallest angle between a non-axis uint8 square-root gradient and the nearest axis (degrees).
_AXIS_GAP = math.degrees(math.atan((math.sqrt(255.0) - math.sqrt(254.0)) / math.sqrt(255.0)))


@functools.lru_cache(maxsize=1)
def _phase_error_ok() -> bool:
    """Whether OpenCV is importable and its ``phase`` meets the bounds the fast path relies on."""
    try:
        import cv2
    except ImportError:  # pragma: no cover - opencv is a project dependency
        return False
    theta = np.linspace(0.0, 2.0 * np.pi, 400_001)
    worst = 0.0
    for scale in (0.03, 1.0, 23.0):
        x = (np.cos(theta) * scale).reshape(1, -1)
        y = (np.sin(theta) * scale).reshape(1, -1)
        got = cv2.phase(x, y, angleInDegrees=True).ravel()
        ref = np.degrees(np.arctan2(y, x)).ravel() % 360.0
        d = np.abs(got - ref)
        worst = max(worst, float(np.minimum(d, 360.0 - d).max()))
    ax = np.array([[1.0, 0.0, -1.0, 0.0, 0.0, 15.9, -0.03]])
    ay = np.array([[0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0]])
    axes = cv2.phase(ax, ay, angleInDegrees=True).ravel().tolist() == [0, 90, 180, 270, 0, 0, 180]
    axes = axes and cv2.phase(ay, ax, angleInDegrees=True).ravel().tolist() == [90, 0, 270, 180, 0, 90, 270]
    return axes and worst <= _PHASE_TOL / 1.5


def _fine_steps(orientations: int) -> int | None:
    """``K`` for the fast path (see above), or None when no power of two fits."""
    k = 1 << max(0, round(math.log2(2100.0 / orientations)))
    half = 90.0 / (k * orientations)  # 0.5 / D, degrees
    # (half > 0.03 keeps the int16 codes 2 n K < 6000 below 32767)
    ok = _PHASE_TOL * 1.5 < half < _AXIS_GAP - _PHASE_TOL * 1.5
    return k if ok else None


def _use_uint8_sqrt_path(x: Tensor, params: HOGParams) -> bool:
    return (
        x.device.type == "cpu"
        and x.dtype == torch.uint8
        and params.transform_sqrt
        and _fine_steps(params.orientations) is not None
        and _phase_error_ok()
    )


@functools.lru_cache(maxsize=16)
def _cell_base_np(rows: int, cols: int, pr: int, pc: int, slots: int) -> np.ndarray:
    """``(rows, cols)`` int64: ``cell * slots`` per pixel (cells of ``pr`` x ``pc`` pixels)."""
    ncx = cols // pc
    r = (np.arange(rows, dtype=np.int64) // pr) * (ncx * slots)
    c = (np.arange(cols, dtype=np.int64) // pc) * slots
    out = r[:, None] + c[None, :]
    out.setflags(write=False)
    return out


def _bins_symmetric_np(gx: np.ndarray, gy: np.ndarray, bins: OrientationBins) -> np.ndarray:
    """:func:`_index_symmetric`'s bins (``axes_exact``) for a 1-D set of float64 gradients, in numpy.

    Exact ties on 45 degrees are decided by the exact comparison ``|gy| - |gx|``, on 0/90 degrees by
    the signs of the components; near ties (within 1e-13 |g| of an edge) go to :func:`numpy_bins`.
    """
    sc = _sign_code(bins.n)
    ax, ay = np.abs(gx), np.abs(gy)
    lim = np.hypot(gx, gy) * _TIE_TOL
    code = np.full(gx.shape, sc.offset, dtype=np.int64)
    near = np.zeros(gx.shape, dtype=bool)
    row = 0
    for kind, t in bins.low:
        if kind == "tan":
            v = ay - t * ax
        elif kind == "cot":
            v = ax - t * ay
        else:
            continue
        near |= np.abs(v) < lim
        code += int(sc.weights[row]) * np.sign(v).astype(np.int64)
        row += 1
    if bins.has_45:
        v = ay - ax
        near |= (v != 0) & (np.abs(v) < lim)
        code += int(sc.weights[row]) * np.sign(v).astype(np.int64)
        row += 1
    code += int(sc.weights[row]) * np.sign(gx).astype(np.int64)
    code += int(sc.weights[row + 1]) * np.sign(gy).astype(np.int64)
    out = np.asarray(sc.table, dtype=np.int64)[code]
    if near.any():
        out[near] = numpy_bins(gx[near], gy[near], bins.n)
    return out


def _exact_bins_np(gx: np.ndarray, gy: np.ndarray, bins: OrientationBins) -> np.ndarray:
    """Exact bins in ``[0, n]`` (n: no bin) of 1-D float64 gradients, as the general path decides them."""
    if bins.symmetric:
        return _bins_symmetric_np(gx, gy, bins)
    tx, ty = torch.from_numpy(gx), torch.from_numpy(gy)
    cell = torch.zeros(tx.shape, dtype=torch.int64)
    return _index_generic(tx, ty, torch.hypot(tx, ty), bins, cell).numpy()


def _histograms_uint8_sqrt(frames: np.ndarray, params: HOGParams, ncy: int, ncx: int) -> np.ndarray:
    """Cell sums ``(B, ncy, ncx, n)`` float64 of uint8 frames with ``transform_sqrt`` (see above).

    Frames are split into contiguous runs, one per thread (``torch.get_num_threads()``, at most one
    per frame): OpenCV and numpy release the GIL, and each frame's sums do not depend on the others.
    """
    num = frames.shape[0]
    out = np.empty((num, ncy, ncx, params.orientations), dtype=np.float64)
    threads = max(1, min(torch.get_num_threads(), num))
    if threads == 1:
        _histogram_run(frames, params, ncy, ncx, out)
        return out
    edges = np.linspace(0, num, threads + 1).astype(int)
    parts = [(frames[a:b], out[a:b]) for a, b in zip(edges[:-1], edges[1:])]
    pool = _pool(threads)
    jobs = [pool.submit(_histogram_run, f, params, ncy, ncx, o) for f, o in parts[1:]]
    _histogram_run(*parts[0][:1], params, ncy, ncx, parts[0][1])  # this thread takes the first run
    for job in jobs:
        job.result()
    return out


@functools.lru_cache(maxsize=4)
def _pool(threads: int):
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(threads - 1, thread_name_prefix="mouseemo-hog")


def _histogram_run(frames: np.ndarray, params: HOGParams, ncy: int, ncx: int, out: np.ndarray) -> None:
    """:func:`_histograms_uint8_sqrt` of ``frames`` into ``out``, with this run's own buffers."""
    import cv2

    num, height, width = frames.shape
    n = params.orientations
    bins = orientation_bins(n)
    (pr, pc), slots = params.pixels_per_cell, 2 * n + 2
    k = _fine_steps(n)
    assert k is not None
    shift = k.bit_length() - 1
    axis_period = n // 2 if n % 2 == 0 else n  # edges j with j * 180 / n a multiple of 90
    # unsafe: v = jK on a non-axis edge j; with a power-of-two period one mask does it
    period_mask = k * axis_period - 1 if axis_period & (axis_period - 1) == 0 else None
    rows, cols = ncy * pr, ncx * pc
    re, ce = min(rows, height - 1), min(cols, width - 1)  # gradients are zero from here on
    sqrt_lut = np.sqrt(np.arange(256, dtype=np.float64))
    scale = k * n / 180.0
    base = _cell_base_np(rows, cols, pr, pc, slots)
    # int16 cell + bin indices when they fit: half the memory traffic of building them, same sums
    small = ncy * ncx * slots <= np.iinfo(np.int16).max
    if small:
        base = base.astype(np.int16)
    base_flat = base.reshape(-1)
    s = np.empty((min(rows + 1, height), min(cols + 1, width)), dtype=np.float64)
    gx = np.zeros((rows, cols), dtype=np.float64)
    gy = np.zeros((rows, cols), dtype=np.float64)
    mag = np.empty((rows, cols), dtype=np.float64)
    phase = np.empty((rows, cols), dtype=np.float64)
    v = np.empty((rows, cols), dtype=np.int16)
    w = np.empty((rows, cols), dtype=np.int16)
    idx = np.empty((rows, cols), dtype=np.int16 if small else np.int64)
    idx_flat = idx.reshape(-1)
    for i in range(num):
        cv2.LUT(frames[i, : s.shape[0], : s.shape[1]], sqrt_lut, dst=s)
        if ce > 1:
            cv2.subtract(s[:rows, 2 : ce + 1], s[:rows, : ce - 1], dst=gx[:, 1:ce])
        if re > 1:
            cv2.subtract(s[2 : re + 1, :cols], s[: re - 1, :cols], dst=gy[1:re])
        cv2.magnitude(gx, gy, mag)  # float64 (cartToPolar's magnitude is float32-accurate)
        cv2.phase(gx, gy, phase, angleInDegrees=True)
        cv2.multiply(phase, scale, dst=v, dtype=cv2.CV_16S)  # round to nearest
        if period_mask is not None:
            np.bitwise_and(v, period_mask, out=w)
            unsafe = ((w & (k - 1)) == 0) & (w != 0)
        else:
            np.bitwise_and(v, k - 1, out=w)
            unsafe = w == 0
        np.right_shift(v, shift, out=w)
        np.add(base, w, out=idx)
        p = np.flatnonzero(unsafe)
        if p.size:
            e = _exact_bins_np(gx.reshape(-1)[p], gy.reshape(-1)[p], bins)
            e[e == n] = slots - 1
            idx_flat[p] = base_flat[p] + e
        h = np.bincount(idx_flat, weights=mag.reshape(-1), minlength=ncy * ncx * slots)
        h = h.reshape(ncy, ncx, slots)
        np.add(h[..., :n], h[..., n : 2 * n], out=out[i])
        out[i, ..., 0] += h[..., 2 * n]
