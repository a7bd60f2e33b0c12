"""The orientation bin of a gradient: scikit-image's rule, the exact and the numpy way.

See the package notes (:mod:`mouseemo.ops._hog`). :func:`numpy_bins` is the installed scikit-image's
answer (numpy's ``arctan2``); :func:`exact_bins` the same formula with a correctly rounded
``arctan2``; :class:`OrientationBins` holds the constants the fast paths test against.
"""

from __future__ import annotations

import functools
import math
import struct
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np
import torch
from torch import Tensor

# A float64 sign test carries < 3e-16 * |g| of rounding error; anything within this fraction of
# the magnitude is re-decided with numpy's arctan2, as scikit-image (a 300x margin).
_TIE_TOL = 1e-13


# exact_bins works on pieces of this many pixels on the CPU (below torch's intra-op grain size, 32768).
_PIECE = 24576

# Veltkamp splitter for float64: 2**27 + 1.
_SPLITTER = 134217729.0


def _edges(n: int) -> list[float]:
    """scikit-image's bin edges ``e_0..e_n`` in degrees: ``(180 / n) * k`` in float64.

    (scikit-image < 0.20 held them in float32; for every ``n`` dividing 180 into a float32-exact
    step, e.g. 4, 6, 8, 9, 10, 12, 16, 18, both agree exactly.)
    """
    step = 180.0 / n
    return [step * k for k in range(n + 1)]


_PI_60 = Decimal("3.14159265358979323846264338327950288419716939937510582097494459230781640628620899")


#: numpy's ``rad2deg`` multiplies by this double.
_RAD2DEG = 180.0 / math.pi


def _cos_sin_decimal(radians: Decimal) -> tuple[Decimal, Decimal]:
    """cos and sin of an exact ``radians`` value to ~60 significant digits (Taylor series)."""
    with localcontext() as ctx:
        ctx.prec = 80
        x = +radians
        cos, sin = Decimal(0), Decimal(0)
        term, k = Decimal(1), 0  # x**k / k!
        limit = Decimal(10) ** -75
        while True:
            if k % 4 == 0:
                cos += term
            elif k % 4 == 1:
                sin += term
            elif k % 4 == 2:
                cos -= term
            else:
                sin -= term
            k += 1
            term = term * x / k
            if abs(term) < limit and k > 4:
                break
        return +cos, +sin


def _double_double(value: Decimal) -> tuple[float, float]:
    hi = float(value)
    with localcontext() as ctx:
        ctx.prec = 80
        lo = float(value - Decimal(hi))
    return hi, lo


def _skimage_theta(a: float) -> float:
    """scikit-image's angle for an ``arctan2`` result ``a``: ``rad2deg(a) % 180`` in numpy's arithmetic."""
    t = a * _RAD2DEG
    if t < 0.0:
        return 0.0 if t == -180.0 else t + 180.0  # np.remainder: fmod, then + 180 for negatives
    return 0.0 if t >= 180.0 else t


def _double_key(a: float) -> int:
    """An integer that orders doubles like their values (adjacent doubles -> adjacent integers)."""
    i = struct.unpack("<q", struct.pack("<d", a))[0]
    return i if i >= 0 else -(i & 0x7FFFFFFFFFFFFFFF)


def _key_double(k: int) -> float:
    i = k if k >= 0 else (-k) | -0x8000000000000000
    return struct.unpack("<d", struct.pack("<q", i))[0]


def _first_double(predicate, lo: float, hi: float) -> float:
    """Smallest double in ``[lo, hi]`` with ``predicate`` (monotone, true at ``hi``): a binary search."""
    a, b = _double_key(lo), _double_key(hi)
    while a < b:
        mid = (a + b) // 2
        if predicate(_key_double(mid)):
            b = mid
        else:
            a = mid + 1
    return _key_double(a)


@dataclass(frozen=True)
class OrientationBins:
    """Constants that decide the orientation bin of a gradient vector (see the module docstring).

    The rule is scikit-image's, evaluated as if ``arctan2`` were correctly rounded: a pixel with
    exact angle ``alpha`` (radians, in (-pi, pi]) gets the bin of ``theta = rad2deg(RN(alpha)) % 180``
    computed in numpy's float64 arithmetic and compared with the edges ``(180 / n) k``. That bin is a step
    function of the double ``RN(alpha)``; for each half plane (``gy > 0``: ``pos``, ``gy < 0``: ``neg``) its
    steps sit at doubles ``T_j``, and ``RN(alpha) >= T_j`` exactly when ``alpha`` exceeds the midpoint
    ``M_j`` between ``T_j`` and the double below it (``alpha`` never equals a dyadic midpoint). So the bin
    is ``values[#{j: alpha >= M_j}]``, and ``alpha >= M_j`` is the sign of ``gy cos M_j - gx sin M_j``,
    evaluated with cos/sin as double-double numbers (``pos_dd``/``neg_dd``: ``c_hi, c_lo, s_hi, s_lo``).
    ``gy == 0`` is always bin 0. Bin ``n`` means "no bin" (scikit-image drops such pixels: angles that
    round to 180 from below).

    The fast paths test against the edges themselves (``edges``, degrees, and ``low``, the
    edges in (0, 90) for the symmetric path) and send every pixel within 1e-13 of an edge to
    :func:`numpy_bins`. ``symmetric`` says the edge set is exactly symmetric about 90 degrees (most ``n``;
    not e.g. 7, 11, 13); ``low`` holds
    ``(kind, t)``: ``"tan"`` (test ``|gy| - t |gx|``, edges < 45), ``"cot"`` (``|gx| - t |gy|``, > 45) or
    ``"45"`` (exact comparison).
    """

    n: int
    edges: tuple[float, ...]
    pos_dd: tuple[tuple[float, float, float, float], ...]
    pos_values: tuple[int, ...]
    neg_dd: tuple[tuple[float, float, float, float], ...]
    neg_values: tuple[int, ...]
    symmetric: bool
    low: tuple[tuple[str, float], ...]

    @property
    def num_irrational_low(self) -> int:
        return sum(kind != "45" for kind, _ in self.low)

    @property
    def has_45(self) -> bool:
        return any(kind == "45" for kind, _ in self.low)


def _steps(n: int, e: list[float], positive: bool) -> tuple[list[tuple[Decimal, Decimal]], list[int]]:
    """Thresholds (cos/sin of the midpoints ``M_j``, ascending) and bins of one half plane."""

    def bin_of(a: float) -> int:
        theta = _skimage_theta(a)
        return sum(1 for k in range(1, n + 1) if e[k] <= theta)

    lo, hi = (math.ulp(0.0), math.pi) if positive else (-math.pi, -math.ulp(0.0))
    values = [bin_of(lo)]
    dd = []
    # bin_of is monotone on each side except for the wrap to 0 at 180 degrees on the positive side;
    # walk the levels (the edges, then 180) in order and find where each is first reached.
    levels = [x for x in e[1:] if x < 180.0] + [180.0]
    for level in levels:
        if positive:
            reached = lambda a, lv=level: a * _RAD2DEG >= lv  # noqa: E731
        else:
            reached = lambda a, lv=level: a * _RAD2DEG + 180.0 >= lv  # noqa: E731
        if not reached(hi):
            continue
        t = _first_double(reached, lo, hi)
        if t <= lo:
            values[0] = bin_of(lo)
            continue
        below = math.nextafter(t, -math.inf)
        with localcontext() as ctx:
            ctx.prec = 80
            mid = (Decimal(below) + Decimal(t)) / 2
        dd.append(_cos_sin_decimal(mid))
        values.append(bin_of(t))
    return dd, values


@functools.lru_cache(maxsize=64)
def orientation_bins(orientations: int) -> OrientationBins:
    """Exact binning constants for ``orientations`` bins over [0, 180) degrees."""
    n = int(orientations)
    e = _edges(n)
    pos_dec, pos_values = _steps(n, e, True)
    neg_dec, neg_values = _steps(n, e, False)
    pos_dd = tuple((*_double_double(c), *_double_double(s)) for c, s in pos_dec)
    neg_dd = tuple((*_double_double(c), *_double_double(s)) for c, s in neg_dec)
    symmetric = e[n] == 180.0 and all(Fraction(e[k]) + Fraction(e[n - k]) == 180 for k in range(1, n))
    symmetric = symmetric and (n % 2 == 1 or e[n // 2] == 90.0)
    low = []
    for deg in e[1:n]:
        if deg >= 90.0:
            break
        if deg == 45.0:
            low.append(("45", 1.0))
        elif deg < 45.0:
            low.append(("tan", math.tan(math.radians(deg))))
        else:
            low.append(("cot", 1.0 / math.tan(math.radians(deg))))
    edges = tuple(x for x in e[1:] if x < 180.0)
    return OrientationBins(
        n,
        edges,
        pos_dd,
        tuple(pos_values),
        neg_dd,
        tuple(neg_values),
        symmetric,
        tuple(low),
    )


def _split_const(a: float) -> tuple[float, float]:
    c = _SPLITTER * a
    hi = c - (c - a)
    return hi, a - hi


def _split(a: Tensor) -> tuple[Tensor, Tensor]:
    c = a * _SPLITTER
    hi = c - (c - a)
    return hi, a - hi


def _two_prod(
    a: Tensor, a_hi: Tensor, a_lo: Tensor, b: float, b_hi: float, b_lo: float
) -> tuple[Tensor, Tensor]:
    """``a * b = p + err`` exactly (Dekker; no FMA needed, so the result is the same on every device)."""
    p = a * b
    err = ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo
    return p, err


def _count_above(x: Tensor, y: Tensor, dd) -> Tensor:
    """``#{j: angle(x, y) >= M_j}`` from the signs of ``y cos M_j - x sin M_j`` (double-double)."""
    x_hi, x_lo = _split(x)
    y_hi, y_lo = _split(y)
    count = torch.zeros(x.shape, dtype=torch.int64, device=x.device)
    for c_hi, c_lo, s_hi, s_lo in dd:
        p1, e1 = _two_prod(y, y_hi, y_lo, c_hi, *_split_const(c_hi))
        p2, e2 = _two_prod(x, x_hi, x_lo, s_hi, *_split_const(s_hi))
        q = p1 - p2
        bv = q - p1
        f = (p1 - (q - bv)) + (-p2 - bv)  # two-sum error of p1 - p2
        rest = f + (e1 - e2) + (y * c_lo - x * s_lo)
        count += (q + rest) >= 0
    return count


@functools.lru_cache(maxsize=64)
def _edges_above_zero(n: int) -> np.ndarray:
    """scikit-image's edges ``e_1..e_n`` (float64, read-only) for :func:`numpy_bins`."""
    out = np.array(_edges(n)[1:], dtype=np.float64)
    out.setflags(write=False)
    return out


def numpy_bins(gx: np.ndarray, gy: np.ndarray, n: int) -> np.ndarray:
    """scikit-image's bins of float64 gradients, with the installed numpy's ``arctan2``.

    ``theta = rad2deg(arctan2(gy, gx)) % 180`` in numpy, then bin ``#{k >= 1: e_k <= theta}`` (the
    ``e_i <= theta < e_{i+1}`` test of scikit-image's histogram loop); ``n`` means "no bin". numpy's
    ``arctan2`` follows the CPU's SIMD (AVX-512 SVML, AVX2, scalar libm) and is off by an ulp now
    and then, which moves pixels within an ulp of an edge: for those pixels this, and only this,
    is scikit-image's answer on this machine. The gradients are made contiguous float64, as
    scikit-image's, so that numpy runs the same loop on them.
    """
    x = np.ascontiguousarray(gx, dtype=np.float64).reshape(-1)
    y = np.ascontiguousarray(gy, dtype=np.float64).reshape(-1)
    theta = np.remainder(np.rad2deg(np.arctan2(y, x)), 180.0)
    return np.searchsorted(_edges_above_zero(n), theta, side="right").astype(np.int64)


def _tie_bins(gx: Tensor, gy: Tensor, bins: OrientationBins) -> Tensor:
    """Bins of near-tie pixels (a handful per frame): :func:`numpy_bins` on the CPU, on ``gx``'s device."""
    x = gx.detach().to("cpu", torch.float64).numpy()
    y = gy.detach().to("cpu", torch.float64).numpy()
    return torch.from_numpy(numpy_bins(x, y, bins.n)).to(gx.device)


def exact_bins(gx: Tensor, gy: Tensor, bins: OrientationBins) -> Tensor:
    """Orientation bin of each gradient ``(gx, gy)`` (column, row derivative) by the exact rule.

    Slow (double-double arithmetic against every threshold); it gives the CUDA kernel its
    constants, and equals the installed scikit-image wherever numpy's ``arctan2`` is correctly
    rounded (the fast paths follow numpy's ``arctan2`` instead, :func:`numpy_bins`). Returns int64 bins in ``[0, n]``, where ``n`` means
    "in no bin" (pixels whose angle rounds to 180 from below; scikit-image drops them). Zero vectors
    get bin 0.
    """
    gx = gx.to(torch.float64)
    gy = gy.to(torch.float64)
    if gx.device.type == "cpu" and gx.numel() > _PIECE:
        # stay below torch's intra-op grain size (see tiling._histograms_cpu)
        parts = [
            exact_bins(a, b, bins)
            for a, b in zip(gx.reshape(-1).split(_PIECE), gy.reshape(-1).split(_PIECE), strict=True)
        ]
        return torch.cat(parts).view(gx.shape)
    # The test is invariant to positive scaling: scale by a power of two (exact) so that the
    # Veltkamp splits cannot overflow.
    big = torch.maximum(gx.abs(), gy.abs())
    _, expo = torch.frexp(big)
    scale = torch.pow(2.0, (-expo).clamp(-1000, 1000).to(torch.float64))
    x = gx * scale
    y = gy * scale
    out = torch.zeros(x.shape, dtype=torch.int64, device=x.device)
    for side, dd, values in ((gy > 0, bins.pos_dd, bins.pos_values), (gy < 0, bins.neg_dd, bins.neg_values)):
        count = _count_above(x[side], y[side], dd)
        out[side] = torch.tensor(values, dtype=torch.int64, device=x.device)[count]
    return out  # gy == 0: angle 0 or 180, bin 0
