"""Cell histograms of whole frames, tile by tile (CPU) or chunk by chunk (GPU), and block normalisation."""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from mouseemo.errors import ConfigError
from mouseemo.ops._hog.bins import OrientationBins
from mouseemo.ops._hog.index import (
    _cell_slots,
    _device_tables,
    _index_generic,
    _index_symmetric,
    _sign_code,
)
from mouseemo.ops._hog.load import _OTHER_LOAD
from mouseemo.ops._hog.params import BLOCK_NORMS, EPS, HOGParams

# Pixels per CPU tile when ops run single-threaded: below torch's intra-op grain size (32768), and
# a tile's ~10 float64 temporaries stay in L2. With free cores: this many per torch thread.
_TILE_PIXELS = 24576


_TILE_PIXELS_PER_THREAD = 49152


def _sqrt_exact(x: Tensor) -> Tensor:
    """Correctly rounded square root, as numpy's (and so scikit-image's).

    torch's CPU kernel (MKL/SLEEF vector math) is accurate to about 1 ulp only: it returns e.g.
    ``sqrt(78) = 8.831760866327846`` where the correctly rounded value ends in ``...848``, which moves
    near-tie pixels into another bin. numpy's ``sqrt`` is the IEEE instruction; CUDA's ``sqrt`` is
    IEEE-rounded too.
    """
    if x.device.type != "cpu":
        return x.sqrt()  # pragma: no mutate (CUDA tensors only)
    return torch.from_numpy(np.sqrt(x.contiguous().numpy()))


@functools.lru_cache(maxsize=8)
def _sqrt_table(device: torch.device) -> Tensor:
    """``sqrt(0..255)`` in float64 (correctly rounded, as numpy's)."""
    return torch.from_numpy(np.sqrt(np.arange(256, dtype=np.float64))).to(device)


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
        else:  # pragma: no mutate block (CUDA tensors only)
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
