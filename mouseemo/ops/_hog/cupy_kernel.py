"""Fused CUDA HOG: two ``cupy.RawKernel`` launches per chunk of frames.

``hog_cells``: one warp per (frame, cell). Each lane walks the cell's pixels (lane = column for
32-pixel-wide cells, so loads are coalesced), computes the central-difference gradient exactly as
scikit-image (float64, or float32 differences for float32 input), the magnitude, and the exact
orientation bin (the exact rule of :mod:`mouseemo.ops._hog.bins`: a float32 sign test per edge, and a
double-double test with ``fma`` error-free products when the float32 test is within 1e-6 of a
tie). Per-bin sums live in registers and are reduced with warp shuffles in a fixed order: no shared
or global atomics, deterministic results. ``hog_blocks``: one thread per (frame, block) normalises
the block and writes the output layout ``(B, n_blocks_r, n_blocks_c, b_r, b_c, n)``.

cupy is imported lazily; nothing here needs CUDA at import time. Any failure to import cupy or to
compile raises :class:`CupyUnavailable`, and :func:`mouseemo.ops.hog` falls back to torch.

The bins are bit-identical to the CPU path (both decide the exact sign of the same double-double
expression); magnitudes and sums agree to ~1e-16 relative (different summation order).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor

from mouseemo.errors import ConfigError
from mouseemo.ops._hog.bins import exact_bins, orientation_bins

__all__ = ["CupyUnavailable", "available", "hog_cupy", "kernel_source"]

_WARPS_PER_BLOCK = 8
_NORM_THREADS = 128

#: torch dtype -> (C type, working precision) for the kernel's input.
_C_TYPES = {
    torch.uint8: "unsigned char",
    torch.int8: "signed char",
    torch.int16: "short",
    torch.int32: "int",
    torch.int64: "long long",
    torch.float32: "float",
    torch.float64: "double",
}
_NORM_IDS = {"L1": 0, "L1-sqrt": 1, "L2": 2, "L2-Hys": 3}


class CupyUnavailable(RuntimeError):
    """cupy is missing, sees no GPU, or the kernel failed to compile or launch."""


@functools.lru_cache(maxsize=1)
def _cupy():
    try:
        import cupy  # noqa: PLC0415 - optional dependency, imported on first use

        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise CupyUnavailable("cupy sees no CUDA device")
        return cupy
    except CupyUnavailable:
        raise
    except Exception as err:  # ImportError, CUDARuntimeError, missing libraries ...
        raise CupyUnavailable(f"cupy is not usable: {err}") from err


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """True when cupy imports and sees a CUDA device (compilation is only tried on first use; cached)."""
    if not torch.cuda.is_available():
        return False
    try:
        _cupy()
    except CupyUnavailable:
        return False
    return True


_SOURCE = r"""
typedef IN_TYPE in_t;

// Fast tests: cos/sin of the bin edges (float32), in the upper half plane.
__constant__ float EDGE_C32[N_EDGES_ALLOC] = {EDGE_C32_VALUES};
__constant__ float EDGE_S32[N_EDGES_ALLOC] = {EDGE_S32_VALUES};
// Exact rule (see mouseemo.ops._hog.bins.OrientationBins): per half plane, cos/sin of the thresholds M_j as
// double-double numbers, and the bin for each count of thresholds below the angle.
__constant__ double POS_DD[N_POS_ALLOC * 4] = {POS_DD_VALUES};
__constant__ double NEG_DD[N_NEG_ALLOC * 4] = {NEG_DD_VALUES};
__constant__ int POS_BIN[N_POS + 1] = {POS_BIN_VALUES};
__constant__ int NEG_BIN[N_NEG + 1] = {NEG_BIN_VALUES};

// sign(y cos M - x sin M) >= 0 with the products' rounding errors recovered exactly by fma and the
// difference by two-sum; what is left is below 2^-104 |g|.
__device__ __forceinline__ int above(double x, double y, const double* dd) {
    const double ch = dd[0], cl = dd[1], sh = dd[2], sl = dd[3];
    double p1 = y * ch, e1 = fma(y, ch, -p1);
    double p2 = x * sh, e2 = fma(x, sh, -p2);
    double q = p1 - p2;
    double bv = q - p1;
    double f = (p1 - (q - bv)) + (-p2 - bv);
    double rest = f + (e1 - e2) + (y * cl - x * sl);
    return (q + rest >= 0.0) ? 1 : 0;
}

__device__ int exact_bin(double gx, double gy) {
    if (gy == 0.0) return 0;
    int ex;
    frexp(fmax(fabs(gx), fabs(gy)), &ex);
    const double x = ldexp(gx, -ex), y = ldexp(gy, -ex);  // exact; keeps the error terms normal
    int count = 0;
    if (gy > 0.0) {
        for (int j = 0; j < N_POS; ++j) count += above(x, y, POS_DD + 4 * j);
        return POS_BIN[count];
    }
    for (int j = 0; j < N_NEG; ++j) count += above(x, y, NEG_DD + 4 * j);
    return NEG_BIN[count];
}

__device__ __forceinline__ int orientation_bin(double gx, double gy) {
    // exact ties on the 0/45/90/135 degree edges: constants (computed with the exact rule)
    if (gy == 0.0) return 0;
    if (gx == 0.0) return gy > 0.0 ? BIN_N : BIN_S;
    if (gx == gy) return gy > 0.0 ? BIN_NE : BIN_SW;
    if (gx == -gy) return gy > 0.0 ? BIN_NW : BIN_SE;
    // fold onto the upper half plane and test each edge in float32; near ties (the float32 test
    // is within 1e-6 |g|, its error is < 3e-7 |g|) and near-axis angles go to the exact rule
    double x = gx, y = gy;
    if (y < 0.0) { x = -x; y = -y; }
    const float x32 = (float)x, y32 = (float)y;
    const float tol = 1e-6f * (fabsf(x32) + y32);
    if (!(y32 > tol) || !(fabsf(x32) > tol)) return exact_bin(gx, gy);
    int bin = 0;
#pragma unroll
    for (int e = 0; e < N_EDGES; ++e) {
        const float d = y32 * EDGE_C32[e] - x32 * EDGE_S32[e];
        if (!(fabsf(d) > tol)) return exact_bin(gx, gy);
        bin += (d > 0.0f) ? 1 : 0;
    }
    return bin;
}

__device__ __forceinline__ WORK_TYPE load(const in_t* __restrict__ img, long long i, const double* lut) {
LOAD_BODY
}

extern "C" __global__ void hog_cells(const in_t* __restrict__ img, double* __restrict__ hist,
                                     long long num_cells, int height, int width, int ncy, int ncx,
                                     int pr, int pc) {
    __shared__ double lut[256];
#if USE_LUT
    for (int i = threadIdx.x; i < 256; i += blockDim.x) lut[i] = sqrt((double)i);
    __syncthreads();
#endif
    const int lane = threadIdx.x & 31;
    const long long cell = (long long)blockIdx.x * WARPS + (threadIdx.x >> 5);
    if (cell >= num_cells) return;
    const int cx = (int)(cell % ncx);
    const long long rest = cell / ncx;
    const int cy = (int)(rest % ncy);
    const long long frame = rest / ncy;
    const in_t* __restrict__ f = img + frame * (long long)height * width;

    double acc[N_SLOTS];
#pragma unroll
    for (int k = 0; k < N_SLOTS; ++k) acc[k] = 0.0;

    const int npix = pr * pc;
    for (int i = lane; i < npix; i += 32) {
        const int r = cy * pr + i / pc;
        const int c = cx * pc + i % pc;
        const long long o = (long long)r * width + c;
        WORK_TYPE gxw = 0, gyw = 0;
        if (c > 0 && c < width - 1) gxw = load(f, o + 1, lut) - load(f, o - 1, lut);
        if (r > 0 && r < height - 1) gyw = load(f, o + width, lut) - load(f, o - width, lut);
        double gx = (double)gxw, gy = (double)gyw;
        double mag = sqrt(gx * gx + gy * gy);
        if (mag == 0.0) continue;
        const int bin = orientation_bin(gx, gy);
#pragma unroll
        for (int k = 0; k < N_SLOTS; ++k) acc[k] += (bin == k) ? mag : 0.0;
    }
    const double inv_area = 1.0 / (double)npix;
#pragma unroll
    for (int k = 0; k < N_SLOTS - 1; ++k) {
        double v = acc[k];
        for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
        if (lane == 0) hist[cell * N_BINS + k] = v * inv_area;
    }
}

extern "C" __global__ void hog_blocks(const double* __restrict__ hist, OUT_TYPE* __restrict__ out,
                                      long long num_blocks, int ncy, int ncx, int nby, int nbx) {
    const long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= num_blocks) return;
    const int bx = (int)(t % nbx);
    const long long rest = t / nbx;
    const int by = (int)(rest % nby);
    const long long frame = rest / nby;
    const double eps = 1e-5;
    double s = 0.0;
    for (int i = 0; i < BR; ++i)
        for (int j = 0; j < BC; ++j)
            for (int k = 0; k < N_BINS; ++k) {
                const double v = hist[((frame * ncy + by + i) * ncx + bx + j) * N_BINS + k];
                s += (NORM <= 1) ? fabs(v) : v * v;
            }
    double scale, s2 = 0.0;
    if (NORM <= 1) scale = 1.0 / (s + eps);
    else scale = 1.0 / sqrt(s + eps * eps);
    if (NORM == 3) {
        for (int i = 0; i < BR; ++i)
            for (int j = 0; j < BC; ++j)
                for (int k = 0; k < N_BINS; ++k) {
                    const double v = fmin(hist[((frame * ncy + by + i) * ncx + bx + j) * N_BINS + k] * scale, 0.2);
                    s2 += v * v;
                }
        s2 = 1.0 / sqrt(s2 + eps * eps);
    }
    OUT_TYPE* o = out + t * (long long)(BR * BC * N_BINS);
    for (int i = 0; i < BR; ++i)
        for (int j = 0; j < BC; ++j)
            for (int k = 0; k < N_BINS; ++k) {
                const double h = hist[((frame * ncy + by + i) * ncx + bx + j) * N_BINS + k];
                double v;
                if (NORM == 0 || NORM == 2) v = h * scale;
                else if (NORM == 1) v = sqrt(h * scale);
                else v = fmin(h * scale, 0.2) * s2;
                o[(i * BC + j) * N_BINS + k] = (OUT_TYPE)v;
            }
}
"""


def _c_list(values, fmt) -> str:
    return ", ".join(fmt(v) for v in values) if len(values) else fmt(0)


def kernel_source(
    in_dtype: torch.dtype,
    orientations: int,
    cells_per_block: tuple[int, int],
    block_norm: str,
    transform_sqrt: bool,
    out_dtype: torch.dtype,
) -> str:
    """CUDA source for one configuration (constants baked in; exposed for inspection and tests)."""
    if in_dtype not in _C_TYPES:
        raise ConfigError(f"the fused kernel does not take {in_dtype} input")
    bins = orientation_bins(orientations)
    n_edges = len(bins.edges)
    use_lut = in_dtype == torch.uint8 and transform_sqrt
    if use_lut:
        body = "    return lut[img[i]];"
    elif in_dtype == torch.float32:
        body = "    return " + ("sqrtf(img[i]);" if transform_sqrt else "img[i];")
    else:
        body = "    return " + ("sqrt((double)img[i]);" if transform_sqrt else "(double)img[i];")
    # Bins of the exact ties on the rational edges, by the exact rule (upper bin).
    ties = torch.tensor([[0.0, 1.0], [0.0, -1.0], [1.0, 1.0], [-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0]])
    tie_bins = exact_bins(ties[:, 0], ties[:, 1], bins).tolist()
    f32 = lambda v: f"{float(np.float32(v))!r}f"  # noqa: E731
    f64 = lambda v: float(v).hex()  # noqa: E731 - hex literals are exact
    defs = {
        "IN_TYPE": _C_TYPES[in_dtype],
        "WORK_TYPE": "float" if in_dtype == torch.float32 else "double",
        "OUT_TYPE": "double" if out_dtype == torch.float64 else "float",
        "N_BINS": str(orientations),
        "N_SLOTS": str(orientations + 1),
        "N_EDGES_ALLOC": str(max(n_edges, 1)),
        "N_EDGES": str(n_edges),
        "N_POS": str(len(bins.pos_dd)),
        "N_NEG": str(len(bins.neg_dd)),
        "N_POS_ALLOC": str(max(len(bins.pos_dd), 1)),
        "N_NEG_ALLOC": str(max(len(bins.neg_dd), 1)),
        "BIN_N": str(tie_bins[0]),
        "BIN_S": str(tie_bins[1]),
        "BIN_NE": str(tie_bins[2]),
        "BIN_SW": str(tie_bins[3]),
        "BIN_NW": str(tie_bins[4]),
        "BIN_SE": str(tie_bins[5]),
        "USE_LUT": "1" if use_lut else "0",
        "WARPS": str(_WARPS_PER_BLOCK),
        "BR": str(cells_per_block[0]),
        "BC": str(cells_per_block[1]),
        "NORM": str(_NORM_IDS[block_norm]),
    }
    cos_sin = [(math.cos(math.radians(e)), math.sin(math.radians(e))) for e in bins.edges]
    fills = {
        "EDGE_C32_VALUES": _c_list([c for c, _ in cos_sin], f32),
        "EDGE_S32_VALUES": _c_list([s for _, s in cos_sin], f32),
        "POS_DD_VALUES": _c_list([v for dd in bins.pos_dd for v in dd], f64),
        "NEG_DD_VALUES": _c_list([v for dd in bins.neg_dd for v in dd], f64),
        "POS_BIN_VALUES": _c_list(bins.pos_values, str),
        "NEG_BIN_VALUES": _c_list(bins.neg_values, str),
    }
    src = _SOURCE.replace("LOAD_BODY", body)
    for key, value in fills.items():
        src = src.replace(key, value)
    # Products must stay IEEE-rounded (no contraction into fma) except where fma() is written out
    # (the error-free products): compile with --fmad=false.
    return "".join(f"#define {k} {v}\n" for k, v in defs.items()) + src


@functools.lru_cache(maxsize=32)
def _module(
    in_dtype: torch.dtype,
    orientations: int,
    cells_per_block: tuple[int, int],
    block_norm: str,
    transform_sqrt: bool,
    out_dtype: torch.dtype,
):
    cp = _cupy()
    src = kernel_source(in_dtype, orientations, cells_per_block, block_norm, transform_sqrt, out_dtype)
    try:
        module = cp.RawModule(code=src, options=("--std=c++17", "--fmad=false"))
        cells = module.get_function("hog_cells")
        blocks = module.get_function("hog_blocks")
    except Exception as err:  # CompileException, CUDADriverError, ...
        raise CupyUnavailable(f"could not build the fused HOG kernel: {err}") from err
    return cells, blocks


def hog_cupy(
    images: Tensor, params, *, out_dtype: torch.dtype = torch.float32, chunk_size: int | None = None
) -> Tensor:
    """HOG blocks of CUDA frames with the fused kernel.

    Args:
        images: ``(B, H, W)`` CUDA tensor (uint8, int8/16/32/64, float32 or float64); validated by
            :func:`mouseemo.ops.hog`.
        params: :class:`mouseemo.ops.HOGParams`.
        out_dtype: torch.float32 or torch.float64.
        chunk_size: frames per launch (default: enough to keep the cell buffer under 256 MB).

    Returns:
        ``(B, n_blocks_r, n_blocks_c, b_r, b_c, n)`` tensor of ``out_dtype`` on the input's device.

    Raises:
        CupyUnavailable: cupy missing, no device, compilation or launch failed.
    """
    if not images.is_cuda:
        raise ConfigError("the fused HOG kernel needs a CUDA tensor")
    cp = _cupy()
    x = images.contiguous()
    if x.dtype not in _C_TYPES:
        x = x.to(torch.float64)
    num, height, width = x.shape
    (pr, pc), (br, bc), n = params.pixels_per_cell, params.cells_per_block, params.orientations
    ncy, ncx, nby, nbx = params.grid(height, width)
    cells_k, blocks_k = _module(x.dtype, n, (br, bc), params.block_norm, params.transform_sqrt, out_dtype)
    out = torch.empty((num, nby, nbx, br, bc, n), dtype=out_dtype, device=x.device)
    per_frame = ncy * ncx * n * 8
    chunk = chunk_size or max(1, (256 << 20) // per_frame)
    hist = torch.empty((min(chunk, num), ncy, ncx, n), dtype=torch.float64, device=x.device)
    try:
        with (
            cp.cuda.Device(x.device.index),
            cp.cuda.ExternalStream(torch.cuda.current_stream(x.device).cuda_stream),
        ):
            for f0 in range(0, num, chunk):
                f1 = min(f0 + chunk, num)
                src = cp.asarray(x[f0:f1])
                h = cp.asarray(hist[: f1 - f0])
                o = cp.asarray(out[f0:f1])
                num_cells = (f1 - f0) * ncy * ncx
                grid = math.ceil(num_cells / _WARPS_PER_BLOCK)
                cells_k(
                    (grid,),
                    (32 * _WARPS_PER_BLOCK,),
                    (
                        src,
                        h,
                        np.int64(num_cells),
                        np.int32(height),
                        np.int32(width),
                        np.int32(ncy),
                        np.int32(ncx),
                        np.int32(pr),
                        np.int32(pc),
                    ),
                )
                num_blocks = (f1 - f0) * nby * nbx
                blocks_k(
                    (math.ceil(num_blocks / _NORM_THREADS),),
                    (_NORM_THREADS,),
                    (h, o, np.int64(num_blocks), np.int32(ncy), np.int32(ncx), np.int32(nby), np.int32(nbx)),
                )
    except CupyUnavailable:
        raise
    except Exception as err:
        raise CupyUnavailable(f"the fused HOG kernel failed: {err}") from err
    return out
