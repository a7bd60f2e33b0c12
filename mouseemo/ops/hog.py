"""Histogram of oriented gradients, equal to ``skimage.feature.hog`` and much faster.

The definition we reproduce (scikit-image >= 0.19, see ``docs/METHOD.md``):

1. The image is cast to float64 (float16/32 become float32), optionally square-rooted.
2. Gradients are central differences without the 1/2 factor, zero on the border rows/columns.
3. Each pixel votes its gradient magnitude into one orientation bin (hard binning, no interpolation):
   ``theta = rad2deg(arctan2(g_r, g_c)) % 180`` against the edges ``e_k = (180 / n) * k``; bin ``i`` is
   ``e_i <= theta < e_{i+1}``.
4. Cell value = sum of magnitudes per bin / pixels per cell; cells that do not fit are dropped.
5. Blocks of cells slide by one cell and are normalised (L1, L1-sqrt, L2, L2-Hys; eps = 1e-5).

**The bin rule, exactly.** ``arctan2`` is not correctly rounded and differs between backends (numpy's
AVX-512 SVML loop, glibc, Sleef in torch, CUDA), and near an edge its last bit decides the bin. The
reference is the installed scikit-image, whose bins follow the installed numpy's ``arctan2`` (so they
change with the CPU's SIMD). Two kinds of pixels sit near an edge: exact ties on the 0/45/90/135
degree edges (the only edges with a rational slope, by Niven's theorem), common in uint8 images,
which scikit-image puts in the upper bin because the rounded angle is exactly the edge; and, with
``transform_sqrt`` or float images, gradients whose direction lies within an ulp of an edge
(``(sqrt(12) - 3) / sqrt(3)`` is exactly ``tan 15``; ``10/255 - 7/255`` and ``100/255 - 97/255``
differ in the last bit). So:

* The fast paths test against the edges in float64, decide exact ties on the rational edges by
  exact comparisons (numpy's ``arctan2`` returns the rounded edge there), and send every pixel within
  1e-13 of the magnitude of an edge (a few per million pixels for square-root gradients, none for
  integer gradients) to :func:`numpy_bins`: numpy's ``arctan2`` of the same float64 gradients on the
  CPU, then ``rad2deg``, ``% 180`` and the edge test, exactly as scikit-image. uint8 frames without
  ``transform_sqrt`` have integer gradients; a 511 x 511 table of their bins (:func:`numpy_bins`) and
  magnitudes replaces the tests.
* :func:`exact_bins` is scikit-image's formula evaluated as if ``arctan2`` were correctly rounded,
  decided without computing an angle (it builds the CUDA kernel's constants). ``bin(RN(alpha))`` is a
  step function of the double ``RN(alpha)``; its steps are at doubles ``T_j`` (one set per half
  plane, found once by bisection over doubles with numpy's own ``rad2deg`` and ``% 180``
  arithmetic), and ``RN(alpha) >= T_j`` exactly when the exact angle ``alpha`` exceeds the midpoint
  ``M_j`` below ``T_j``: the sign of ``g_r cos M_j - g_c sin M_j``, computed with cos/sin as
  double-double numbers and error-free products.

**Speed on CPU.** Whole-batch tensors thrash the cache, so frames are cut into tiles of whole cells
(tens of thousands of pixels; see ``_histograms_cpu`` for how they use several cores). The bin tests use the symmetry
of the edge set: signs of ``|g_r| - tan(e) |g_c|`` for the edges below 90 degrees, of ``|g_r| - |g_c|``
and of ``g_c``, ``g_r`` are packed into one integer code (one ``addmv``) whose bin comes from a table.
Per-cell sums are one ``scatter_add_``. On CUDA the same code runs on chunks of whole frames; with
cupy installed a fused kernel (:mod:`mouseemo.ops.hog_cupy`) is used instead.

Magnitude sums are float64. scikit-image accumulates each cell serially in float32, so results agree
to ~1e-7 (not bit for bit) after normalisation.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import struct
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np
import torch
from torch import Tensor, nn

from mouseemo.errors import ConfigError, DataError

__all__ = [
    "BLOCK_NORMS",
    "HOG",
    "HOGParams",
    "check_frame_size",
    "exact_bins",
    "hog",
    "hog_output_size",
    "numpy_bins",
    "orientation_bins",
]

#: Block normalisation methods, as scikit-image names them.
BLOCK_NORMS: tuple[str, ...] = ("L1", "L1-sqrt", "L2", "L2-Hys")

#: scikit-image's block normalisation epsilon.
EPS = 1e-5

#: Backends :func:`hog` accepts.
BACKENDS: tuple[str, ...] = ("auto", "torch", "cupy")

# A float64 sign test carries < 3e-16 * |g| of rounding error; anything within this fraction of
# the magnitude is re-decided with numpy's arctan2, as scikit-image (a 300x margin).
_TIE_TOL = 1e-13

# Pixels per CPU tile when ops run single-threaded: below torch's intra-op grain size (32768), and
# a tile's ~10 float64 temporaries stay in L2. With free cores: this many per torch thread.
_TILE_PIXELS = 24576
_TILE_PIXELS_PER_THREAD = 49152

# Veltkamp splitter for float64: 2**27 + 1.
_SPLITTER = 134217729.0

IntPair = int | Sequence[int]


# ----------------------------------------------------------------------------------------------
# Parameters and sizes
# ----------------------------------------------------------------------------------------------


def _pair(value: IntPair, name: str) -> tuple[int, int]:
    if isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{name} must be a positive int or a pair of them; got {value!r}")
    if isinstance(value, (int, np.integer)):
        pair = (int(value), int(value))
    else:
        try:
            items = list(value)  # type: ignore[arg-type]
        except TypeError:
            raise ConfigError(f"{name} must be a positive int or a pair of them; got {value!r}") from None
        if len(items) != 2 or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in items
        ):
            raise ConfigError(f"{name} must be a positive int or a pair of them; got {value!r}")
        pair = (int(items[0]), int(items[1]))
    if pair[0] <= 0 or pair[1] <= 0:
        raise ConfigError(f"{name} must be positive; got {value!r}")
    return pair


@dataclass(frozen=True)
class HOGParams:
    """Validated HOG parameters (scikit-image's names and meanings).

    Build with :meth:`create`, which accepts ints for the pair-valued fields and raises
    :class:`~mouseemo.errors.ConfigError` on invalid values.
    """

    orientations: int = 8
    pixels_per_cell: tuple[int, int] = (32, 32)
    cells_per_block: tuple[int, int] = (1, 1)
    block_norm: str = "L2-Hys"
    transform_sqrt: bool = True

    @classmethod
    def create(
        cls,
        orientations: int = 8,
        pixels_per_cell: IntPair = (32, 32),
        cells_per_block: IntPair = (1, 1),
        block_norm: str = "L2-Hys",
        transform_sqrt: bool = True,
    ) -> HOGParams:
        if isinstance(orientations, (bool, np.bool_)) or not isinstance(orientations, (int, np.integer)):
            raise ConfigError(f"orientations must be a positive int; got {orientations!r}")
        if orientations <= 0:
            raise ConfigError(f"orientations must be positive; got {orientations}")
        if block_norm not in BLOCK_NORMS:
            raise ConfigError(f"block_norm must be one of {', '.join(BLOCK_NORMS)}; got {block_norm!r}")
        if not isinstance(transform_sqrt, (bool, np.bool_)):
            raise ConfigError(f"transform_sqrt must be a bool; got {transform_sqrt!r}")
        return cls(
            orientations=int(orientations),
            pixels_per_cell=_pair(pixels_per_cell, "pixels_per_cell"),
            cells_per_block=_pair(cells_per_block, "cells_per_block"),
            block_norm=str(block_norm),
            transform_sqrt=bool(transform_sqrt),
        )

    def grid(self, height: int, width: int) -> tuple[int, int, int, int]:
        """``(n_cells_r, n_cells_c, n_blocks_r, n_blocks_c)`` for a frame; ConfigError if too small."""
        check_frame_size(height, width, self.pixels_per_cell, self.cells_per_block)
        (pr, pc), (br, bc) = self.pixels_per_cell, self.cells_per_block
        ncy, ncx = height // pr, width // pc
        return ncy, ncx, ncy - br + 1, ncx - bc + 1

    def output_shape(self, height: int, width: int) -> tuple[int, int, int, int, int]:
        """``(n_blocks_r, n_blocks_c, b_r, b_c, orientations)`` for one frame."""
        _, _, nby, nbx = self.grid(height, width)
        return (nby, nbx, *self.cells_per_block, self.orientations)

    def output_size(self, height: int, width: int) -> int:
        """Feature length ``D`` for one frame."""
        return math.prod(self.output_shape(height, width))


def check_frame_size(
    height: int,
    width: int,
    pixels_per_cell: IntPair = (32, 32),
    cells_per_block: IntPair = (1, 1),
) -> None:
    """Raise :class:`~mouseemo.errors.ConfigError` unless a ``height`` x ``width`` frame holds a block.

    Example:
        >>> check_frame_size(480, 640)
        >>> check_frame_size(20, 640)
        Traceback (most recent call last):
        ...
        mouseemo.errors.ConfigError: a 20x640 (h x w) frame is smaller than one HOG block ...
    """
    pr, pc = _pair(pixels_per_cell, "pixels_per_cell")
    br, bc = _pair(cells_per_block, "cells_per_block")
    if height // pr < br or width // pc < bc:
        raise ConfigError(
            f"a {height}x{width} (h x w) frame is smaller than one HOG block: it needs at least "
            f"{br * pr}x{bc * pc} pixels (cells_per_block={br, bc}, pixels_per_cell={pr, pc})"
        )


def hog_output_size(
    height: int,
    width: int,
    orientations: int = 8,
    pixels_per_cell: IntPair = (32, 32),
    cells_per_block: IntPair = (1, 1),
) -> int:
    """Length ``D`` of the HOG feature vector of a ``height`` x ``width`` frame.

    ``D = n_blocks_r * n_blocks_c * b_r * b_c * orientations`` with
    ``n_blocks = floor(size / pixels_per_cell) - cells_per_block + 1``.

    Example:
        >>> hog_output_size(480, 640)  # 15 x 20 cells of 32 px, 8 orientations
        2400
    """
    params = HOGParams.create(orientations, pixels_per_cell, cells_per_block)
    return params.output_size(height, width)


# ----------------------------------------------------------------------------------------------
# Orientation bins
# ----------------------------------------------------------------------------------------------


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
    if gx.device.type == "cpu" and gx.numel() > _TILE_PIXELS:
        # stay below torch's intra-op grain size (see _histograms_cpu)
        parts = [
            exact_bins(a, b, bins)
            for a, b in zip(
                gx.reshape(-1).split(_TILE_PIXELS), gy.reshape(-1).split(_TILE_PIXELS), strict=True
            )
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


def _sqrt_exact(x: Tensor) -> Tensor:
    """Correctly rounded square root, as numpy's (and so scikit-image's).

    torch's CPU kernel (MKL/SLEEF vector math) is accurate to about 1 ulp only: it returns e.g.
    ``sqrt(78) = 8.831760866327846`` where the correctly rounded value ends in ``...848``, which moves
    near-tie pixels into another bin. numpy's ``sqrt`` is the IEEE instruction; CUDA's ``sqrt`` is
    IEEE-rounded too.
    """
    if x.device.type != "cpu":
        return x.sqrt()
    return torch.from_numpy(np.sqrt(x.contiguous().numpy()))


@functools.lru_cache(maxsize=8)
def _sqrt_table(device: torch.device) -> Tensor:
    """``sqrt(0..255)`` in float64 (correctly rounded, as numpy's)."""
    return torch.from_numpy(np.sqrt(np.arange(256, dtype=np.float64))).to(device)


@functools.lru_cache(maxsize=16)
def _uint8_tables(orientations: int) -> tuple[Tensor, Tensor]:
    """Bin and magnitude of every integer gradient in [-255, 255]^2, indexed ``(gy + 255) * 511 + gx + 255``.

    The bins are scikit-image's on this machine (:func:`numpy_bins`, the same numpy ``arctan2``);
    the zero vector gets bin 0 (its magnitude is 0).
    """
    g = np.arange(-255, 256, dtype=np.float64)
    gy, gx = (t.reshape(-1) for t in np.meshgrid(g, g, indexing="ij"))
    b = torch.from_numpy(numpy_bins(gx, gy, orientations))
    mag = torch.from_numpy(np.hypot(gx, gy))
    return b, mag


# ----------------------------------------------------------------------------------------------
# Per-tile computation
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    """What :func:`_tile_histograms` needs besides the pixels."""

    params: HOGParams
    bins: OrientationBins
    height: int
    width: int
    mode: str  # "lut" (uint8, no sqrt), "f64" or "f32" (dtype of image and gradients)
    reduce: str  # "scatter" or "perbin"
    axes_exact: bool = False  # small-integer source: no gradient component is tiny but non-zero
    rowwise: bool = True  # single-threaded CPU tiles: one row per op, no VML ops; else whole buffers
    sqrt_in_tile: bool = True  # False: the frames given to the tiles are already square-rooted


def _gradients(
    img: Tensor,
    r0: int,
    r1: int,
    c0: int,
    c1: int,
    ra: int,
    ca: int,
    height: int,
    width: int,
    gx: Tensor,
    gy: Tensor,
) -> None:
    """Central differences over pixel rows [r0, r1) x cols [c0, c1) of a (b, h, w) slice starting at
    (ra, ca), written into ``gx``, ``gy`` ``(b, r1 - r0, c1 - c0)``.

    Zero on the frame's border rows (``gy``) and columns (``gx``), as scikit-image.
    """
    lo, hi = max(r0, 1), min(r1, height - 1)
    cs = slice(c0 - ca, c1 - ca)
    if hi > lo:
        torch.sub(
            img[:, lo + 1 - ra : hi + 1 - ra, cs],
            img[:, lo - 1 - ra : hi - 1 - ra, cs],
            out=gy[:, lo - r0 : hi - r0],
        )
    if lo > r0:
        gy[:, : lo - r0].zero_()
    if hi < r1:
        gy[:, max(hi - r0, 0) :].zero_()
    lo, hi = max(c0, 1), min(c1, width - 1)
    rs = slice(r0 - ra, r1 - ra)
    if hi > lo:
        torch.sub(
            img[:, rs, lo + 1 - ca : hi + 1 - ca],
            img[:, rs, lo - 1 - ca : hi - 1 - ca],
            out=gx[:, :, lo - c0 : hi - c0],
        )
    if lo > c0:
        gx[:, :, : lo - c0].zero_()
    if hi < c1:
        gx[:, :, max(hi - c0, 0) :].zero_()


@dataclass(frozen=True)
class _SignCode:
    """How the symmetric fast path turns signs into a bin (see :func:`_sign_code`)."""

    rows: int  # sign rows: irrational low edges, then |gy| - |gx| (if 45 is an edge), gx, gy
    weights: tuple[float, ...]
    offset: int  # added so that codes start at 0
    size: int  # number of codes
    table: tuple[int, ...]  # code -> bin


@functools.lru_cache(maxsize=64)
def _sign_code(orientations: int) -> _SignCode:
    """Bin of a gradient from the signs of a few linear forms (symmetric edge sets).

    With ``psi`` the angle of ``(|gx|, |gy|)`` in [0, 90], ``S`` the number of irrational edges in
    (0, 90) below ``psi`` (the sum of the signs of ``|gy| - tan(e)|gx|``, which are never 0 away from
    near ties) and ``s45 = sign(|gy| - |gx|)``: when the components have the same sign (or
    ``gy == 0``: angle 0) the angle is ``psi`` and the bin is ``S + [s45 >= 0]``; otherwise (or
    ``gx == 0 != gy``: exactly 90) the angle is ``180 - psi`` and the bin is
    ``#{edges <= 90} + (k - S) + [s45 <= 0]``. The signs are packed into one integer code (a
    mixed-radix number) whose bin comes from a table.
    """
    bins = orientation_bins(orientations)
    k = bins.num_irrational_low
    radix = 2 * k + 1
    weights = [1.0 if kind == "tan" else -1.0 for kind, _ in bins.low if kind != "45"]
    place = radix
    if bins.has_45:
        weights.append(float(place))
        place *= 3
    weights += [float(place), float(3 * place)]
    digits = [radix] + ([3] if bins.has_45 else []) + [3, 3]
    size = math.prod(digits)
    offset = k + sum(int(w) for w in weights[k:])
    up_to_90 = len(bins.low) + (1 - orientations % 2)
    table = []
    for code in range(size):
        rest, s2 = divmod(code, radix)
        s2 -= k
        s45 = 0
        if bins.has_45:
            rest, s45 = divmod(rest, 3)
            s45 -= 1
        sgy, sgx = divmod(rest, 3)
        sgx, sgy = sgx - 1, sgy - 1
        n_low = (s2 + k) // 2
        opposite = sgy != 0 and sgx * sgy <= 0
        if bins.has_45:
            b = up_to_90 + k - n_low + (s45 <= 0) if opposite else n_low + (s45 >= 0)
        else:
            b = up_to_90 + k - n_low if opposite else n_low
        table.append(min(max(b, 0), orientations - 1))
    return _SignCode(len(weights), tuple(weights), offset, size, tuple(table))


# Tiles up to this many pixels keep their index tensors cached (CPU tiles); bigger ones (whole
# chunks of frames on a GPU) build them from broadcast pieces instead of holding frame-sized buffers.
_MAX_CACHED_INDEX = 1 << 18


def _cell_slots(b: int, rows: int, cols: int, pr: int, pc: int, slots: int, device: torch.device) -> Tensor:
    """``(b, rows, cols)`` int64 (possibly a broadcast view): flat index of (frame, cell, bin 0) per pixel."""
    if b * rows * cols <= _MAX_CACHED_INDEX:
        return _cell_slots_cached(b, rows, cols, pr, pc, slots, device)
    return _cell_slots_cached(b, rows, cols, pr, pc, slots, device, materialize=False)


@functools.lru_cache(maxsize=64)
def _cell_slots_cached(
    b: int, rows: int, cols: int, pr: int, pc: int, slots: int, device: torch.device, materialize: bool = True
) -> Tensor:
    ncy, ncx = rows // pr, cols // pc
    r = (torch.arange(rows, device=device) // pr) * (ncx * slots)
    c = (torch.arange(cols, device=device) // pc) * slots
    f = torch.arange(b, device=device) * (ncy * ncx * slots)
    if materialize:
        return (f[:, None, None] + r[None, :, None] + c[None, None, :]).contiguous()
    # rows and frames broadcast; only one (rows, cols) plane is stored
    plane = r[:, None] + c[None, :]
    return f[:, None, None] + plane[None]


# Above this many (cell, code) pairs per tile the code table is not expanded per cell.
_MAX_CELL_TABLE = 1 << 20


@functools.lru_cache(maxsize=64)
def _code_tables(
    orientations: int, b: int, rows: int, cols: int, pr: int, pc: int, device: torch.device
) -> tuple[Tensor, Tensor, Tensor, bool]:
    """``(code base, weights, table, per_cell)`` for :func:`_index_symmetric`.

    When ``per_cell`` (small tiles), the table is expanded per cell (``cell * size + code -> cell *
    slots + bin``) and the base holds ``cell * size + offset`` per pixel, so that one lookup yields
    the scatter index; otherwise the table maps code -> bin and the base is the offset alone.
    """
    sc = _sign_code(orientations)
    slots = orientations + 1
    ncells = b * (rows // pr) * (cols // pc)
    weights = torch.tensor(sc.weights, dtype=torch.float64, device=device)
    table = torch.tensor(sc.table, dtype=torch.int64, device=device)
    per_cell = ncells * sc.size <= _MAX_CELL_TABLE and b * rows * cols <= _MAX_CACHED_INDEX
    if per_cell:
        cell = torch.arange(ncells, device=device)
        table = (cell[:, None] * slots + table[None, :]).reshape(-1)
        base = _cell_slots(b, rows, cols, pr, pc, slots, device).div(slots, rounding_mode="floor")
        base = (base * sc.size + sc.offset).to(torch.float64).reshape(-1)
    else:
        base = torch.full((1,), float(sc.offset), dtype=torch.float64, device=device)
    return base, weights, table, per_cell


def _index_symmetric(
    buf: Tensor,
    q: Tensor,
    m: Tensor,
    bins: OrientationBins,
    b: int,
    rows: int,
    cols: int,
    pr: int,
    pc: int,
    axes_exact: bool = False,
    rowwise: bool = False,
) -> Tensor:
    """Scatter index (int64, flat) for symmetric edge sets; see :func:`_sign_code`.

    ``buf`` is ``(T, b, rows, cols)`` float64 whose last two rows hold gx and gy; it is overwritten.
    Near ties (``0 < |form| < 1e-13 |g|``) are re-decided by :func:`numpy_bins`. ``axes_exact`` says
    that a non-zero gradient component is never below 1e-13 of the magnitude (small-integer sources),
    so the 90 and 0/180 degree edges need no near-tie check.
    """
    sc = _sign_code(bins.n)
    views = buf.unbind(0)
    gx, gy = views[-2], views[-1]
    ax = gx.abs()
    ay = gy.abs()
    k = bins.num_irrational_low
    row = 0
    for kind, t in bins.low:
        if kind == "tan":  # |gy| - tan(e) |gx|
            torch.add(ay, ax, alpha=-t, out=views[row])
        elif kind == "cot":  # |gx| - cot(e) |gy| (t = cot(e) < 1): the opposite sign, weight -1
            torch.add(ax, ay, alpha=-t, out=views[row])
        else:
            continue
        row += 1
    if bins.has_45:
        torch.sub(ay, ax, out=views[row])
    # Near ties go to numpy_bins: pixels within 1e-13 |g| of an irrational edge (a zero test value
    # is a near tie too: no gradient lies exactly on such an edge), and pixels within 1e-13 |g| of a
    # rational one (45, and 90 and 0/180 through gx, gy themselves, unless the source rules out tiny
    # non-zero parts) that are not exactly on it (exact ties are decided exactly by the comparisons).
    # (On CPU tiles every op works on one row, below torch's intra-op grain size: tiles run on our
    # own thread pool, and nested OpenMP teams would fight it.)
    checks = []
    if k == 1:
        checks.append(views[0].abs().sub_(m, alpha=_TIE_TOL))
    elif k == 2:  # |d1 d2| < 1.5 tol |g|^2 catches |d_i| < tol |g| (the other factor is <= 1.5 |g|)
        checks.append(torch.mul(views[0], views[1]).abs_().sub_(q, alpha=1.5 * _TIE_TOL))
    elif k > 2 and rowwise:
        near = views[0].abs()
        for v in views[1:k]:
            torch.minimum(near, v.abs(), out=near)
        checks.append(near.sub_(m, alpha=_TIE_TOL))
    elif k > 2:
        checks.append(buf[:k].abs().amin(0).sub_(m, alpha=_TIE_TOL))
    rational = views[k : k + int(bins.has_45)] if axes_exact else views[k:]
    if not rowwise and len(rational) > 1:
        a = buf[k:].abs()
        checks.append(a.mul_(torch.add(a, m, alpha=-_TIE_TOL)).amin(0))
    elif rational:
        near = None
        for v in rational:
            a = v.abs()
            a.mul_(torch.add(a, m, alpha=-_TIE_TOL))  # a (a - tol |g|) < 0  <=>  0 < a < tol |g|
            near = a if near is None else torch.minimum(near, a, out=near)
        checks.append(near)
    exact = None
    if checks:
        near = checks[0]
        for c in checks[1:]:
            near = torch.minimum(near, c, out=near)
        if bool(near.amin() < 0):
            flag = (near < 0).reshape(-1)
            exact = (flag, gx.reshape(-1)[flag].clone(), gy.reshape(-1)[flag].clone())
    base, weights, table, per_cell = _code_tables(bins.n, b, rows, cols, pr, pc, buf.device)
    if rowwise:
        code = torch.add(base, views[0].sign_().view(-1), alpha=sc.weights[0])
        for v, w in zip(views[1:], sc.weights[1:], strict=True):
            code.add_(v.sign_().view(-1), alpha=w)
    else:
        code = torch.addmv(base, buf.sign_().view(sc.rows, -1).t(), weights)
    idx = table.index_select(0, code.to(torch.int64))
    if not per_cell:
        idx = (
            idx.view(b, rows, cols).add_(_cell_slots(b, rows, cols, pr, pc, bins.n + 1, buf.device)).view(-1)
        )
    if exact is not None:
        flag, fx, fy = exact
        slot = idx[flag]
        idx[flag] = slot - slot % (bins.n + 1) + _tie_bins(fx, fy, bins)
    return idx


@functools.lru_cache(maxsize=64)
def _edge_cos_sin(orientations: int) -> tuple[tuple[float, float], ...]:
    return tuple(
        (math.cos(math.radians(e)), math.sin(math.radians(e))) for e in orientation_bins(orientations).edges
    )


def _index_generic(gx: Tensor, gy: Tensor, m: Tensor, bins: OrientationBins, cell: Tensor) -> Tensor:
    """Scatter index for edge sets without the symmetry (n = 7, 11, 13, ...): one test per edge."""
    flip = (gy < 0) | ((gy == 0) & (gx < 0))
    x = torch.where(flip, -gx, gx)
    y = gy.abs()
    out = torch.zeros(gx.shape, dtype=torch.int64, device=gx.device)
    near = y.clone()  # angles near 0/180 degrees can round across the wrap: check them too
    for c, s in _edge_cos_sin(bins.n):
        d = y * c - x * s
        out.add_(d >= 0)
        torch.minimum(near, d.abs_(), out=near)
    # zero vectors pass every test; their magnitude is 0, so any bin is right, but keep it in range
    out.masked_fill_(m == 0, 0)
    flag = (near < m * _TIE_TOL) & (m > 0) & (y != 0)
    if bool(flag.any()):
        out[flag] = _tie_bins(gx[flag], gy[flag], bins)
    return out.add_(cell).reshape(-1)


def _tile_histograms(frames: Tensor, cy0: int, cy1: int, cx0: int, cx1: int, job: _Job) -> Tensor:
    """Per-cell magnitude sums ``(b, cy1 - cy0, cx1 - cx0, n + 1)`` float64 of a tile of whole cells.

    ``frames`` are the raw ``(b, H, W)`` frames; slot ``n`` collects pixels that fall in no bin.
    """
    (pr, pc), bins = job.params.pixels_per_cell, job.bins
    height, width, dev = job.height, job.width, frames.device
    r0, r1, c0, c1 = cy0 * pr, cy1 * pr, cx0 * pc, cx1 * pc
    ra, rb, ca, cb = max(r0 - 1, 0), min(r1 + 1, height), max(c0 - 1, 0), min(c1 + 1, width)
    src = frames[:, ra:rb, ca:cb]
    b, rows, cols = src.shape[0], r1 - r0, c1 - c0
    ncy, ncx, slots = cy1 - cy0, cx1 - cx0, bins.n + 1
    if job.mode == "lut":
        img = src.to(torch.int32)
        g = torch.empty((2, b, rows, cols), dtype=torch.int32, device=dev)
        _gradients(img, r0, r1, c0, c1, ra, ca, height, width, g[0], g[1])
        key = g[1].mul_(511).add_(g[0]).add_(255 * 511 + 255).reshape(-1).to(torch.int64)
        lut_bins, lut_mag = _device_tables(bins.n, dev)
        m = lut_mag.index_select(0, key)
        idx = lut_bins.index_select(0, key).view(b, rows, cols)
        idx = idx.add_(_cell_slots(b, rows, cols, pr, pc, slots, dev)).view(-1)
    else:
        # torch.sqrt is an MKL/VML kernel that splits work at 2048 elements: one per tile would wake
        # torch's sleeping worker threads each time (~0.1 ms idle, ~10 ms on busy cores). uint8 and
        # int8 images use a table instead; other images come square-rooted (see _histograms_cpu).
        if job.params.transform_sqrt and src.dtype in (torch.uint8, torch.int8) and job.sqrt_in_tile:
            img = _sqrt_table(dev).index_select(0, src.reshape(-1).to(torch.int32)).view(src.shape)
        else:
            img = src.to(torch.float64 if job.mode == "f64" else torch.float32)
            if job.params.transform_sqrt and job.sqrt_in_tile:
                img = _sqrt_exact(img)
        nrows = _sign_code(bins.n).rows if bins.symmetric else 2
        buf = torch.empty((nrows, b, rows, cols), dtype=torch.float64, device=dev)
        if job.mode == "f32":  # scikit-image differences float32 images in float32, then widens
            g32 = torch.empty((2, b, rows, cols), dtype=torch.float32, device=dev)
            _gradients(img, r0, r1, c0, c1, ra, ca, height, width, g32[0], g32[1])
            buf[-2:].copy_(g32)
        else:
            _gradients(img, r0, r1, c0, c1, ra, ca, height, width, buf[-2], buf[-1])
        # CPU: hypot, as scikit-image (and no VML sqrt, see above), in every threading mode so that
        # results do not depend on the load; GPU: the cheaper sqrt(gx^2 + gy^2) (same to 1 ulp).
        if dev.type == "cpu":
            m = torch.hypot(buf[-2], buf[-1])
            q = m * m
        else:
            q = buf[-2] * buf[-2]
            q.addcmul_(buf[-1], buf[-1])
            m = torch.sqrt(q)
        if bins.symmetric:
            idx = _index_symmetric(buf, q, m, bins, b, rows, cols, pr, pc, job.axes_exact, job.rowwise)
        else:
            idx = _index_generic(buf[-2], buf[-1], m, bins, _cell_slots(b, rows, cols, pr, pc, slots, dev))
        m = m.reshape(-1)
    if job.reduce == "scatter":
        hist = torch.zeros(b * ncy * ncx * slots, dtype=torch.float64, device=dev)
        hist.scatter_add_(0, idx, m)
        return hist.view(b, ncy, ncx, slots)
    # Deterministic reduction without atomics: one masked sum per bin.
    local = (idx % slots).view(b, ncy, pr, ncx, pc)
    mm = m.view(b, ncy, pr, ncx, pc)
    parts = [torch.where(local == k, mm, 0.0).sum(dim=(2, 4)) for k in range(slots)]
    return torch.stack(parts, dim=-1)


@functools.lru_cache(maxsize=8)
def _device_tables(orientations: int, device: torch.device) -> tuple[Tensor, Tensor]:
    b, mag = _uint8_tables(orientations)
    return b.to(device), mag.to(device)


# ----------------------------------------------------------------------------------------------
# Whole frames: tiling, threads, normalisation
# ----------------------------------------------------------------------------------------------


def _tiles(
    ncy: int, ncx: int, pr: int, pc: int, frames_per_tile: int, pixels: int
) -> list[tuple[int, int, int, int]]:
    """Cell ranges ``(cy0, cy1, cx0, cx1)`` covering the grid, each at most ~``pixels`` pixels."""
    budget = max(pixels // max(frames_per_tile, 1), pr * pc)
    row_px = ncx * pc * pr
    if row_px <= budget:
        rows_per = max(1, budget // row_px)
        return [(cy, min(cy + rows_per, ncy), 0, ncx) for cy in range(0, ncy, rows_per)]
    cols_per = max(1, budget // (pr * pc))
    return [(cy, cy + 1, cx, min(cx + cols_per, ncx)) for cy in range(ncy) for cx in range(0, ncx, cols_per)]


class _OtherLoad:
    """How many cores other processes keep busy, from ``/proc/stat`` minus our own CPU time (Linux).

    Refreshed at most every 0.5 s; before two samples exist, the number of runnable tasks stands in.
    Elsewhere it reports 0 (cores assumed free).
    """

    def __init__(self) -> None:
        self._last: tuple[float, float, float] | None = None
        self._value = 0.0
        self._lock = threading.Lock()
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def _sample(self) -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat") as fh:
                vals = [int(v) for v in fh.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        busy = (sum(vals) - vals[3] - vals[4]) / self._tick  # all but idle and iowait, in seconds
        return time.monotonic(), busy, time.process_time()

    @staticmethod
    def _running_now() -> float:
        """Runnable tasks of other processes right now (``/proc/loadavg`` minus our running threads)."""
        try:
            with open("/proc/loadavg") as fh:
                running = int(fh.read().split()[3].split("/")[0])
            own = 0
            for task in os.listdir("/proc/self/task"):
                with open(f"/proc/self/task/{task}/stat") as fh:
                    own += fh.read().rsplit(")", 1)[1].split()[0] == "R"
        except (OSError, ValueError, IndexError):
            return 0.0
        return float(max(0, running - max(own, 1)))

    def cores(self) -> float:
        with self._lock:
            now = self._sample()
            if now is None:
                return 0.0
            if self._last is None:
                self._last = now
                self._value = self._running_now()
            elif now[0] - self._last[0] >= 0.5:
                wall = now[0] - self._last[0]
                others = (now[1] - self._last[1]) - (now[2] - self._last[2])
                self._value = max(0.0, others / wall)
                self._last = now
            return self._value


_OTHER_LOAD = _OtherLoad()


def _histograms_cpu(frames: Tensor, job: _Job, chunk_size: int, ncy: int, ncx: int) -> Tensor:
    """Cell sums of CPU frames, tile by tile.

    Small tiles keep each op's working set in cache. With several torch threads and free cores,
    tiles grow to ``_TILE_PIXELS_PER_THREAD`` per thread and torch splits each op across its threads
    (OpenMP). When other processes keep the cores busy, OpenMP's per-op barriers stall on descheduled
    threads (a 5x slow-down measured on 2 shared cores), so tiles then stay below torch's 32768-element
    grain size and run single-threaded (every op on one row of a tile).
    """
    (pr, pc), slots = job.params.pixels_per_cell, job.bins.n + 1
    num = frames.shape[0]
    hist = torch.empty((num, ncy, ncx, slots), dtype=torch.float64)
    threads = torch.get_num_threads()
    cores = os.cpu_count() or 1
    parallel = threads > 1 and cores - _OTHER_LOAD.cores() >= min(threads, cores) - 0.25
    # Square roots of images without a table (not uint8/int8): once per chunk of frames, not per tile.
    presqrt = (
        job.params.transform_sqrt and job.mode != "lut" and frames.dtype not in (torch.uint8, torch.int8)
    )
    job = dataclasses.replace(job, rowwise=not parallel, sqrt_in_tile=not presqrt)
    # one torch thread: no OpenMP to avoid, so tiles may be as big as a parallel one per thread
    pixels = _TILE_PIXELS_PER_THREAD * threads if parallel or threads == 1 else _TILE_PIXELS
    tiles = _tiles(ncy, ncx, pr, pc, chunk_size, pixels)
    for f0 in range(0, num, chunk_size):
        f1 = min(f0 + chunk_size, num)
        chunk = frames[f0:f1]
        if presqrt:
            chunk = _sqrt_exact(chunk.to(torch.float64 if job.mode == "f64" else torch.float32))
        for cy0, cy1, cx0, cx1 in tiles:
            hist[f0:f1, cy0:cy1, cx0:cx1] = _tile_histograms(chunk, cy0, cy1, cx0, cx1, job)
    return hist


def _histograms_torch_device(frames: Tensor, job: _Job, chunk_size: int, ncy: int, ncx: int) -> Tensor:
    parts = []
    for f0 in range(0, frames.shape[0], chunk_size):
        parts.append(_tile_histograms(frames[f0 : f0 + chunk_size], 0, ncy, 0, ncx, job))
    return torch.cat(parts) if len(parts) > 1 else parts[0]


def normalize_blocks(hist: Tensor, cells_per_block: tuple[int, int], block_norm: str) -> Tensor:
    """Group cell histograms into sliding blocks and normalise each block (scikit-image's formulas).

    Args:
        hist: cell histograms (already divided by the cell area).
        cells_per_block: ``(b_r, b_c)``.
        block_norm: one of :data:`BLOCK_NORMS`.

    Shape:
        - hist: :math:`(B, n_{cells,r}, n_{cells,c}, n)`
        - output: :math:`(B, n_{blocks,r}, n_{blocks,c}, b_r, b_c, n)`
    """
    br, bc = cells_per_block
    if (br, bc) == (1, 1):
        blocks = hist[:, :, :, None, None, :]
    else:  # reductions over a strided unfold view are slow: copy once
        blocks = hist.unfold(1, br, 1).unfold(2, bc, 1).permute(0, 1, 2, 4, 5, 3).contiguous()
    dims = (3, 4, 5)
    if block_norm == "L1":
        return blocks / (blocks.abs().sum(dims, keepdim=True) + EPS)
    if block_norm == "L1-sqrt":
        return torch.sqrt(blocks / (blocks.abs().sum(dims, keepdim=True) + EPS))
    if block_norm == "L2":
        return blocks / torch.sqrt((blocks * blocks).sum(dims, keepdim=True) + EPS**2)
    if block_norm == "L2-Hys":
        out = blocks / torch.sqrt((blocks * blocks).sum(dims, keepdim=True) + EPS**2)
        out = out.clamp(max=0.2)
        return out / torch.sqrt((out * out).sum(dims, keepdim=True) + EPS**2)
    raise ConfigError(f"block_norm must be one of {', '.join(BLOCK_NORMS)}; got {block_norm!r}")


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------

_WARNED_FALLBACK = False


def _as_tensor(images) -> tuple[Tensor, bool]:
    """``(tensor, came_from_numpy)``; numpy arrays are wrapped without a copy where possible."""
    if isinstance(images, Tensor):
        return images, False
    if isinstance(images, np.ndarray):
        if images.dtype.kind not in "biuf":
            raise DataError(f"images must hold real numbers; got a numpy array of dtype {images.dtype}")
        arr = images if images.dtype.isnative else images.astype(images.dtype.newbyteorder("="))
        return torch.from_numpy(np.ascontiguousarray(arr)), True
    raise DataError(f"images must be a torch.Tensor or a numpy.ndarray; got {type(images).__name__}")


def _working_dtype(x: Tensor) -> Tensor:
    """Cast to what the tiles read: uint8 stays (lookup tables), float16/bfloat16 -> float32 (as
    scikit-image), unsigned types torch barely supports -> int64/float64 (exact), others unchanged."""
    if x.dtype == torch.bool:
        return x.to(torch.uint8)
    if x.dtype in (torch.float16, torch.bfloat16):
        return x.to(torch.float32)
    if x.dtype in (torch.uint16, torch.uint32):
        return x.to(torch.int64)
    if x.dtype == torch.uint64:
        return x.to(torch.float64)
    if x.is_complex() or not (
        x.is_floating_point() or x.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
    ):
        raise DataError(f"images must hold real numbers; got dtype {x.dtype}")
    return x


def _check_values(x: Tensor, transform_sqrt: bool) -> None:
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise DataError("images contain NaN or infinite values")
    if transform_sqrt and x.dtype != torch.uint8 and bool((x < 0).any()):
        raise DataError("transform_sqrt=True needs non-negative images; found negative values")


def _cupy_usable() -> bool:
    from mouseemo.ops import hog_cupy

    return hog_cupy.available()


def hog(
    images,
    orientations: int = 8,
    pixels_per_cell: IntPair = (32, 32),
    cells_per_block: IntPair = (1, 1),
    block_norm: str = "L2-Hys",
    transform_sqrt: bool = True,
    feature_vector: bool = True,
    *,
    backend: str = "auto",
    chunk_size: int | None = None,
):
    """HOG features of gray frames, equal to ``skimage.feature.hog`` (within 1e-6, see module notes).

    Arguments are scikit-image's (``pixels_per_cell`` and ``cells_per_block`` also accept an int);
    the defaults are the paper's: 8 orientations, 32 x 32 pixel cells, 1 x 1 blocks, L2-Hys,
    square-root compression.

    Args:
        images: one frame ``(H, W)`` or a batch ``(B, H, W)``; a torch tensor on any device or a numpy
            array; uint8/uint16/other integers or float16/32/64, used as they are (0..255 for uint8),
            as scikit-image does.
        orientations: number of orientation bins over [0, 180) degrees.
        pixels_per_cell: cell size ``(rows, cols)``.
        cells_per_block: block size in cells ``(rows, cols)``; blocks slide by one cell.
        block_norm: ``"L1"``, ``"L1-sqrt"``, ``"L2"`` or ``"L2-Hys"``.
        transform_sqrt: take the square root of the image first (needs non-negative values).
        feature_vector: flatten each frame's features (C order) to a vector.
        backend: ``"auto"`` (the fused cupy kernel for CUDA tensors when cupy works, torch
            otherwise), ``"torch"`` or ``"cupy"``.
        chunk_size: frames per vectorised step. Default: 1 on CPU (cache-sized tiles of one frame),
            enough frames for ~64 M pixels on CUDA.

    Returns:
        For numpy input a numpy array of scikit-image's dtype (float32 for float16/32 images, float64
        otherwise); for a tensor, a tensor on its device, float64 for float64 input, else float32.

    Raises:
        ConfigError: invalid parameters, or frames smaller than one block.
        DataError: not (H, W) / (B, H, W), a non-numeric dtype, NaN/inf values, or negative values
            with ``transform_sqrt``.

    Shape:
        - images: :math:`(H, W)` or :math:`(B, H, W)`
        - output: :math:`(D,)` / :math:`(B, D)` with ``feature_vector``, otherwise
          :math:`([B,] n_{blocks,r}, n_{blocks,c}, b_r, b_c, n)`, where
          ``D = hog_output_size(H, W, orientations, pixels_per_cell, cells_per_block)``.

    Example:
        >>> frames = torch.randint(0, 256, (4, 480, 640), dtype=torch.uint8)
        >>> hog(frames).shape
        torch.Size([4, 2400])
    """
    global _WARNED_FALLBACK
    params = HOGParams.create(orientations, pixels_per_cell, cells_per_block, block_norm, transform_sqrt)
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    bad_chunk = isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, type(None)))
    if bad_chunk or (chunk_size is not None and chunk_size <= 0):
        raise ConfigError(f"chunk_size must be a positive int or None; got {chunk_size!r}")
    x, was_numpy = _as_tensor(images)
    if x.ndim not in (2, 3):
        raise DataError(f"images must be (H, W) or (B, H, W); got shape {tuple(x.shape)}")
    in_dtype = x.dtype
    x = _working_dtype(x)
    single = x.ndim == 2
    if single:
        x = x.unsqueeze(0)
    num, height, width = x.shape
    ncy, ncx, _, _ = params.grid(height, width)
    _check_values(x, params.transform_sqrt)

    # scikit-image's precision: float16/32 images stay float32 (square root and differences in
    # float32), everything else becomes float64.
    if x.dtype == torch.uint8 and not params.transform_sqrt:
        mode = "lut"
    else:
        mode = "f32" if x.dtype == torch.float32 else "f64"
    if was_numpy:
        out_dtype = torch.float32 if mode == "f32" else torch.float64
    else:
        out_dtype = torch.float64 if in_dtype == torch.float64 else torch.float32

    if backend == "cupy" and not x.is_cuda:
        raise ConfigError("backend='cupy' needs a CUDA tensor")
    feats = None
    if num > 0 and x.is_cuda and backend != "torch" and (backend == "cupy" or _cupy_usable()):
        from mouseemo.ops import hog_cupy

        try:
            feats = hog_cupy.hog_cupy(x, params, out_dtype=out_dtype, chunk_size=chunk_size)
        except hog_cupy.CupyUnavailable as err:
            if backend == "cupy":
                raise ConfigError(f"backend='cupy' is not usable here: {err}") from err
            if not _WARNED_FALLBACK:
                warnings.warn(
                    f"fused CUDA HOG kernel unavailable ({err}); using the torch path", stacklevel=2
                )
                _WARNED_FALLBACK = True
    if feats is None:
        with torch.no_grad():  # HOG is not differentiable (hard binning)
            # gradients of <= 16-bit integers never have a tiny non-zero component (see _index_symmetric)
            axes_exact = in_dtype in (torch.bool, torch.uint8, torch.int8, torch.int16, torch.uint16)
            feats = _hog_torch(x.detach().contiguous(), params, mode, chunk_size, ncy, ncx, axes_exact)
            feats = feats.to(out_dtype)
    if feature_vector:
        feats = feats.reshape(num, params.output_size(height, width))
    if single:
        feats = feats[0]
    return feats.numpy() if was_numpy else feats


# ----------------------------------------------------------------------------------------------
# CPU fast path: uint8 frames with transform_sqrt (OpenCV + numpy, frame by frame)
# ----------------------------------------------------------------------------------------------
#
# The gradients are those of the general path, bit for bit: square roots from a table of
# correctly rounded float64 values, float64 differences (exact subtractions of those doubles).
# The bin is first read off OpenCV's ``phase`` (a float32 polynomial atan2, max error 0.0096
# degrees, checked at first use by `_phase_error_ok`) and then made exact:
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
#   (`_bins_symmetric_np`; `_index_generic` for asymmetric edge sets).
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
    ok = _PHASE_TOL * 1.5 < half < _AXIS_GAP - _PHASE_TOL * 1.5 and 2 * orientations * k < 32767
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
    """Cell sums ``(B, ncy, ncx, n)`` float64 of uint8 frames with ``transform_sqrt`` (see above)."""
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
    base_flat = base.reshape(-1)
    s = np.empty((min(rows + 1, height), min(cols + 1, width)), dtype=np.float64)
    gx = np.zeros((rows, cols), dtype=np.float64)
    gy = np.zeros((rows, cols), dtype=np.float64)
    mag = np.empty((rows, cols), dtype=np.float64)
    phase = np.empty((rows, cols), dtype=np.float64)
    v = np.empty((rows, cols), dtype=np.int16)
    w = np.empty((rows, cols), dtype=np.int16)
    idx = np.empty((rows, cols), dtype=np.int64)
    idx_flat = idx.reshape(-1)
    out = np.empty((num, ncy, ncx, n), dtype=np.float64)
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
    return out


def _hog_torch(
    x: Tensor, params: HOGParams, mode: str, chunk_size: int | None, ncy: int, ncx: int, axes_exact: bool
) -> Tensor:
    """Blocks ``(B, n_blocks_r, n_blocks_c, b_r, b_c, n)`` float64 with torch ops (any device)."""
    num, height, width = x.shape
    bins = orientation_bins(params.orientations)
    (pr, pc), slots = params.pixels_per_cell, params.orientations + 1
    if num == 0:
        hist = torch.zeros((0, ncy, ncx, slots), dtype=torch.float64, device=x.device)
    elif _use_uint8_sqrt_path(x, params):
        hist = torch.from_numpy(_histograms_uint8_sqrt(x.numpy(), params, ncy, ncx))
    elif x.device.type == "cpu":
        job = _Job(params, bins, height, width, mode, "scatter", axes_exact)
        hist = _histograms_cpu(x, job, chunk_size or 1, ncy, ncx)
    else:
        # scatter_add_ uses atomics on CUDA (order-dependent rounding); honour deterministic mode
        reduce = "perbin" if torch.are_deterministic_algorithms_enabled() else "scatter"
        job = _Job(params, bins, height, width, mode, reduce, axes_exact, rowwise=False)
        hist = _histograms_torch_device(x, job, chunk_size or max(1, (1 << 26) // (height * width)), ncy, ncx)
    hist = hist[..., : params.orientations] / float(pr * pc)
    return normalize_blocks(hist, params.cells_per_block, params.block_norm)


class HOG(nn.Module):
    """Module form of :func:`hog` (no parameters; holds the HOG settings).

    Args: see :func:`hog`.

    Shape:
        - input: :math:`(H, W)` or :math:`(B, H, W)`
        - output: :math:`(D,)` / :math:`(B, D)` (``feature_vector=True``)

    Example:
        >>> m = HOG(orientations=8, pixels_per_cell=32)
        >>> m(torch.zeros(2, 64, 96, dtype=torch.uint8)).shape
        torch.Size([2, 48])
    """

    def __init__(
        self,
        orientations: int = 8,
        pixels_per_cell: IntPair = (32, 32),
        cells_per_block: IntPair = (1, 1),
        block_norm: str = "L2-Hys",
        transform_sqrt: bool = True,
        feature_vector: bool = True,
        *,
        backend: str = "auto",
        chunk_size: int | None = None,
    ) -> None:
        super().__init__()
        self.params = HOGParams.create(
            orientations, pixels_per_cell, cells_per_block, block_norm, transform_sqrt
        )
        if backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
        self.feature_vector = bool(feature_vector)
        self.backend = backend
        self.chunk_size = chunk_size

    def output_size(self, height: int, width: int) -> int:
        """Feature length ``D`` for a ``height`` x ``width`` frame."""
        return self.params.output_size(height, width)

    def forward(self, images: Tensor) -> Tensor:
        p = self.params
        return hog(
            images,
            p.orientations,
            p.pixels_per_cell,
            p.cells_per_block,
            p.block_norm,
            p.transform_sqrt,
            self.feature_vector,
            backend=self.backend,
            chunk_size=self.chunk_size,
        )

    def extra_repr(self) -> str:
        p = self.params
        return (
            f"orientations={p.orientations}, pixels_per_cell={p.pixels_per_cell}, "
            f"cells_per_block={p.cells_per_block}, block_norm={p.block_norm!r}, "
            f"transform_sqrt={p.transform_sqrt}, feature_vector={self.feature_vector}"
        )
