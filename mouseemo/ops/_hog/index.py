"""Per-pixel orientation bins as flat per-cell slots (the scatter index of a tile).

Symmetric edge sets pack the signs of a few linear forms into one integer code whose bin comes from a
table (:func:`_sign_code`); other edge sets test each edge (:func:`_index_generic`); uint8 gradients
without square root read a 511 x 511 table (:func:`_uint8_tables`). Near ties go to
:func:`~mouseemo.ops._hog.bins.numpy_bins`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from mouseemo.ops._hog.bins import _TIE_TOL, OrientationBins, _tie_bins, numpy_bins, orientation_bins


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


@functools.lru_cache(maxsize=8)
def _device_tables(orientations: int, device: torch.device) -> tuple[Tensor, Tensor]:
    b, mag = _uint8_tables(orientations)
    return b.to(device), mag.to(device)


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
    axes_exact: bool,
    rowwise: bool,
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
        # Gradients whose squares overflow (|g| > 1e154) make NaN tests: numpy decides those pixels
        # (a NaN minimum must not hide the other pixels' near ties either).
        if not bool(near.amin() >= 0):
            flag = (near >= 0).logical_not_().reshape(-1)
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
