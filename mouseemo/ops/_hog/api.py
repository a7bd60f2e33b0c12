"""The public HOG: :func:`hog` and its module form :class:`HOG`."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor, nn

from mouseemo.errors import ConfigError, DataError
from mouseemo.ops._hog import opencv
from mouseemo.ops._hog.bins import orientation_bins
from mouseemo.ops._hog.params import BACKENDS, HOGParams, IntPair
from mouseemo.ops._hog.tiling import _histograms_cpu, _histograms_torch_device, _Job, normalize_blocks

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


def _settings(
    orientations, pixels_per_cell, cells_per_block, block_norm, transform_sqrt, backend
) -> HOGParams:
    """The validated parameters of :func:`hog` and :class:`HOG`."""
    params = HOGParams.create(orientations, pixels_per_cell, cells_per_block, block_norm, transform_sqrt)
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    return params


def _cupy_usable() -> bool:  # pragma: no mutate block (CUDA tensors only)
    from mouseemo.ops._hog import cupy_kernel

    return cupy_kernel.available()


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
    params = _settings(orientations, pixels_per_cell, cells_per_block, block_norm, transform_sqrt, backend)
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
        from mouseemo.ops._hog import cupy_kernel

        try:  # pragma: no mutate block (CUDA tensors only)
            feats = cupy_kernel.hog_cupy(x, params, out_dtype=out_dtype, chunk_size=chunk_size)
        except cupy_kernel.CupyUnavailable as err:  # pragma: no mutate block
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


def _hog_torch(
    x: Tensor, params: HOGParams, mode: str, chunk_size: int | None, ncy: int, ncx: int, axes_exact: bool
) -> Tensor:
    """Blocks ``(B, n_blocks_r, n_blocks_c, b_r, b_c, n)`` float64 with torch ops (any device)."""
    num, height, width = x.shape
    bins = orientation_bins(params.orientations)
    (pr, pc), slots = params.pixels_per_cell, params.orientations + 1
    if num == 0:
        hist = torch.zeros((0, ncy, ncx, slots), dtype=torch.float64, device=x.device)
    elif opencv._use_uint8_sqrt_path(x, params):
        hist = torch.from_numpy(opencv._histograms_uint8_sqrt(x.numpy(), params, ncy, ncx))
    elif x.device.type == "cpu":
        job = _Job(params, bins, height, width, mode, "scatter", axes_exact)
        hist = _histograms_cpu(x, job, chunk_size or 1, ncy, ncx)
    else:  # pragma: no mutate block (CUDA tensors only)
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
        self.params = _settings(
            orientations, pixels_per_cell, cells_per_block, block_norm, transform_sqrt, backend
        )
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
