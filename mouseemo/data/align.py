"""Cross-session alignment of a face to a reference face (mean frames), on any torch device.

The camera or the head plate moves a little between sessions; prototypes built on one session only
transfer if the faces line up. Alignment estimates a similarity transform (shift, rotation, scale)
that maps a session's mean frame onto a reference mean frame:

1. Phase correlation (torch FFT) gives the shift of the unrotated frame.
2. A grid search over rotation and scale: each candidate rotates/scales the frame about its centre
   (kornia ``get_rotation_matrix2d`` + ``warp_affine``), re-estimates the residual shift by phase
   correlation, and is scored by the normalised correlation with the reference over the pixels that
   stay inside the frame. A finer grid around the best candidate follows.

All candidates of a grid are warped as one batch, so on CUDA tensors the search runs on the GPU.
Matrices follow OpenCV's convention: a ``(2, 3)`` matrix ``M`` maps a pixel ``(x, y)`` of the session
frame to ``M @ (x, y, 1)`` in the reference frame (``cv2.warpAffine(frame, M, (W, H))`` applies it).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mouseemo.data.crop import Crop, check_crop, parse_crop
from mouseemo.data.video import VideoReader
from mouseemo.errors import ConfigError, DataError

__all__ = ["Alignment", "align_to_reference", "apply_alignment", "mean_frame", "phase_correlation"]


@dataclass
class Alignment:
    """Result of :func:`align_to_reference`.

    Attributes:
        matrix: ``(2, 3)`` float64 affine matrix, session frame -> reference frame (OpenCV convention).
        angle_deg: rotation about the frame centre, degrees, counter-clockwise on screen.
        scale: isotropic scale factor.
        shift: ``(dx, dy)`` pixels applied after the rotation.
        score: normalised correlation of the aligned frame with the reference (1 = identical).
        score_before: the same score before alignment, for comparison.
        aligned: ``(H, W)`` float32 aligned frame (the aligned crop when a crop was given).
    """

    matrix: np.ndarray
    angle_deg: float
    scale: float
    shift: tuple[float, float]
    score: float
    score_before: float
    aligned: np.ndarray

    def to_dict(self) -> dict:
        """JSON-friendly summary (without the aligned image)."""
        return {
            "matrix": self.matrix.tolist(),
            "angle_deg": self.angle_deg,
            "scale": self.scale,
            "shift": list(self.shift),
            "score": self.score,
            "score_before": self.score_before,
        }


def _as_image(x: torch.Tensor | np.ndarray, name: str, device: torch.device | None) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x)
    if device is not None:
        t = t.to(device)
    if t.ndim != 2:
        raise DataError(f"{name} must be one (H, W) frame; got shape {tuple(t.shape)}")
    if not torch.isfinite(t.float()).all():
        raise DataError(f"{name} contains NaN or infinite values")
    return t.float()


def _hann(height: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    wy = torch.hann_window(height, periodic=False, device=device, dtype=dtype)
    wx = torch.hann_window(width, periodic=False, device=device, dtype=dtype)
    return wy[:, None] * wx[None, :]


def _subpixel(c_minus: torch.Tensor, c0: torch.Tensor, c_plus: torch.Tensor) -> torch.Tensor:
    """Vertex offset of the parabola through three samples (0 where it is flat)."""
    denom = c_minus - 2 * c0 + c_plus
    off = torch.where(denom.abs() > 1e-12, 0.5 * (c_minus - c_plus) / denom, torch.zeros_like(denom))
    return off.clamp(-0.5, 0.5)


def phase_correlation(
    reference: torch.Tensor, images: torch.Tensor, window: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Translation that moves each image onto the reference, by phase correlation.

    Args:
        reference: ``(H, W)`` float frame.
        images: ``(H, W)`` or ``(B, H, W)`` float frames on the same device.
        window: taper both with a Hann window first (suppresses the frame-edge discontinuity).

    Returns:
        ``(shift, peak)``: ``shift`` ``(B, 2)`` as ``(dx, dy)`` in pixels with sub-pixel refinement
        (moving image content by ``+dx`` columns and ``+dy`` rows aligns it), ``peak`` ``(B,)`` the
        height of the correlation peak (1 for a pure circular shift).

    Shape:
        reference ``(H, W)``, images ``(B, H, W)`` -> ``(B, 2)``, ``(B,)``.
    """
    single = images.ndim == 2
    imgs = images[None] if single else images
    h, w = reference.shape
    ref = reference - reference.mean()
    imgs = imgs - imgs.mean(dim=(-2, -1), keepdim=True)
    if window:
        win = _hann(h, w, ref.device, ref.dtype)
        ref, imgs = ref * win, imgs * win
    cross = torch.fft.rfft2(ref)[None] * torch.fft.rfft2(imgs).conj()
    cross = cross / cross.abs().clamp_min(1e-12)
    corr = torch.fft.irfft2(cross, s=(h, w))  # (B, H, W)
    b = corr.shape[0]
    flat = corr.reshape(b, -1).argmax(dim=1)
    py, px = flat // w, flat % w
    rows = torch.arange(b, device=corr.device)
    c0 = corr[rows, py, px]
    dy = py.to(corr.dtype) + _subpixel(corr[rows, (py - 1) % h, px], c0, corr[rows, (py + 1) % h, px])
    dx = px.to(corr.dtype) + _subpixel(corr[rows, py, (px - 1) % w], c0, corr[rows, py, (px + 1) % w])
    # peaks past the middle are negative shifts (the correlation is circular)
    dy = torch.where(dy > h / 2, dy - h, dy)
    dx = torch.where(dx > w / 2, dx - w, dx)
    shift = torch.stack([dx, dy], dim=1)
    return (shift[0], c0[0]) if single else (shift, c0)


def _rotation_matrices(angles: torch.Tensor, scales: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(N, 2, 3)`` rotation/scale matrices about the frame centre (kornia, OpenCV convention)."""
    from kornia.geometry.transform import get_rotation_matrix2d

    n = len(angles)
    center = torch.tensor([(width - 1) / 2.0, (height - 1) / 2.0], device=angles.device, dtype=angles.dtype)
    return get_rotation_matrix2d(center.expand(n, 2), angles, scales[:, None].expand(n, 2).contiguous())


def _compose_shift(matrices: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    out = matrices.clone()
    out[:, :, 2] = out[:, :, 2] + shift
    return out


def _warp(images: torch.Tensor, matrices: torch.Tensor, dsize: tuple[int, int]) -> torch.Tensor:
    """Warp ``(N, H, W)`` (or one ``(H, W)`` broadcast to all) with ``(N, 2, 3)`` matrices."""
    from kornia.geometry.transform import warp_affine

    src = images[None, None] if images.ndim == 2 else images[:, None]
    if src.shape[0] == 1 and len(matrices) > 1:
        src = src.expand(len(matrices), -1, -1, -1)
    return warp_affine(src, matrices, dsize=dsize, mode="bilinear", padding_mode="zeros", align_corners=True)[
        :, 0
    ]


def _masked_ncc(reference: torch.Tensor, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Normalised correlation of each image with the reference over its mask's pixels."""
    m = (masks > 0.999).to(images.dtype)
    n = m.sum(dim=(-2, -1)).clamp_min(1.0)
    mean_r = (reference[None] * m).sum(dim=(-2, -1)) / n
    mean_i = (images * m).sum(dim=(-2, -1)) / n
    r = (reference[None] - mean_r[:, None, None]) * m
    i = (images - mean_i[:, None, None]) * m
    num = (r * i).sum(dim=(-2, -1))
    den = torch.sqrt((r * r).sum(dim=(-2, -1)) * (i * i).sum(dim=(-2, -1))).clamp_min(1e-12)
    # too few valid pixels (extreme warps) cannot win
    return torch.where(n > 0.25 * reference.numel(), num / den, torch.full_like(num, -1.0))


def _search(
    reference: torch.Tensor,
    image: torch.Tensor,
    angles: torch.Tensor,
    scales: torch.Tensor,
    chunk: int,
) -> tuple[float, float, torch.Tensor, float]:
    """Best (angle, scale, matrix, score) over the grid ``angles`` x ``scales``."""
    h, w = reference.shape
    grid_a, grid_s = torch.meshgrid(angles, scales, indexing="ij")
    grid_a, grid_s = grid_a.reshape(-1), grid_s.reshape(-1)
    ones = torch.ones_like(image)
    best = (-2.0, 0, None)
    for start in range(0, len(grid_a), chunk):
        a, s = grid_a[start : start + chunk], grid_s[start : start + chunk]
        rot = _rotation_matrices(a, s, h, w)
        shift, _ = phase_correlation(reference, _warp(image, rot, (h, w)))
        mats = _compose_shift(rot, shift)
        scores = _masked_ncc(reference, _warp(image, mats, (h, w)), _warp(ones, mats, (h, w)))
        k = int(scores.argmax())
        if float(scores[k]) > best[0]:
            best = (float(scores[k]), start + k, mats[k])
    score, k, matrix = best
    return float(grid_a[k]), float(grid_s[k]), matrix, score


def align_to_reference(
    image: torch.Tensor | np.ndarray,
    reference: torch.Tensor | np.ndarray,
    max_angle: float = 10.0,
    angle_step: float = 1.0,
    scale_range: tuple[float, float] = (0.9, 1.1),
    scale_step: float = 0.02,
    refine: bool = True,
    crop: Crop | str | None = None,
    device: torch.device | str | None = None,
    chunk: int = 64,
) -> Alignment:
    """Estimate the similarity transform that maps ``image`` onto ``reference``.

    Args:
        image: ``(H, W)`` frame of the session to align (e.g. its mean frame).
        reference: ``(H, W)`` reference frame (e.g. the mean frame of the session whose prototypes
            are reused). Both must have the same size.
        max_angle, angle_step: rotations searched, ``-max_angle .. +max_angle`` degrees.
        scale_range, scale_step: scales searched.
        refine: search a 4x finer grid around the best coarse candidate.
        crop: ``(x, y, w, h)`` of the reference frame to return as ``aligned`` (``None``: whole frame).
        device: where to compute (default: the image's device; CUDA makes the search GPU-bound).
        chunk: candidates warped per batch.

    Returns:
        An :class:`Alignment`.

    Raises:
        DataError: frames of different sizes, or not 2-D.
        ConfigError: an empty search grid.

    Shape:
        image, reference ``(H, W)`` -> ``matrix (2, 3)``, ``aligned (H, W)`` or ``(h, w)`` with a crop.

    Example:
        >>> ref = np.random.default_rng(0).random((64, 80)).astype(np.float32)  # doctest: +SKIP
        >>> align_to_reference(np.roll(ref, 3, axis=1), ref).shift  # doctest: +SKIP
        (-3.0, 0.0)
    """
    dev = torch.device(device) if device is not None else (image.device if torch.is_tensor(image) else None)
    img = _as_image(image, "image", dev)
    ref = _as_image(reference, "reference", img.device)
    if img.shape != ref.shape:
        raise DataError(
            f"image {tuple(img.shape)} and reference {tuple(ref.shape)} must have the same (H, W) size"
        )
    if angle_step <= 0 or scale_step <= 0 or max_angle < 0 or scale_range[0] > scale_range[1]:
        raise ConfigError("alignment grid needs max_angle >= 0, positive steps and scale_range low <= high")
    crop = parse_crop(crop)
    h, w = ref.shape
    check_crop(crop, h, w, "the reference frame")
    dt = torch.float32

    def grid(lo: float, hi: float, step: float) -> torch.Tensor:
        num = int(math.floor((hi - lo) / step + 1e-9)) + 1
        return torch.linspace(lo, lo + (num - 1) * step, num, device=img.device, dtype=dt)

    angles = grid(-max_angle, max_angle, angle_step)
    scales = grid(scale_range[0], scale_range[1], scale_step)
    angle, scale, matrix, score = _search(ref, img, angles, scales, chunk)
    if refine:
        fa = grid(angle - angle_step, angle + angle_step, angle_step / 4)
        fs = grid(max(scale - scale_step, 1e-3), scale + scale_step, scale_step / 4)
        a2, s2, m2, sc2 = _search(ref, img, fa, fs, chunk)
        if sc2 >= score:
            angle, scale, matrix, score = a2, s2, m2, sc2
    ones = torch.ones_like(img)
    before = float(_masked_ncc(ref, img[None], ones[None])[0])
    aligned = _warp(img, matrix[None], (h, w))[0]
    if crop is not None:
        x, y, cw, ch = crop
        aligned = aligned[y : y + ch, x : x + cw]
    m = matrix.double().cpu().numpy()
    rot = _rotation_matrices(
        torch.tensor([angle], dtype=torch.float64), torch.tensor([scale], dtype=torch.float64), h, w
    )[0].numpy()
    shift = (float(m[0, 2] - rot[0, 2]), float(m[1, 2] - rot[1, 2]))
    return Alignment(
        matrix=m,
        angle_deg=angle,
        scale=scale,
        shift=shift,
        score=score,
        score_before=before,
        aligned=aligned.cpu().numpy().astype(np.float32),
    )


def apply_alignment(
    frames: torch.Tensor | np.ndarray,
    matrix: np.ndarray | torch.Tensor | Sequence[Sequence[float]],
    crop: Crop | str | None = None,
    dsize: tuple[int, int] | None = None,
) -> torch.Tensor | np.ndarray:
    """Warp frames into the reference frame with an alignment ``matrix``, then crop.

    Args:
        frames: ``(H, W)`` or ``(B, H, W)``; numpy or torch (any device), uint8 or float.
        matrix: ``(2, 3)`` matrix from :func:`align_to_reference` (OpenCV convention).
        crop: ``(x, y, w, h)`` in the reference frame, applied after warping.
        dsize: ``(H, W)`` of the reference frame (default: the frames' size).

    Returns:
        The warped (and cropped) frames, same library, device and dtype as ``frames`` (uint8 results
        are rounded); pixels that come from outside the source frame are 0.

    Shape:
        ``(B, H, W)`` -> ``(B, H', W')`` (``(h, w)`` of the crop, else ``dsize``).
    """
    as_numpy = not torch.is_tensor(frames)
    x = torch.as_tensor(np.asarray(frames) if as_numpy else frames)
    if x.ndim not in (2, 3):
        raise DataError(f"frames must be (H, W) or (B, H, W); got shape {tuple(x.shape)}")
    single = x.ndim == 2
    xb = x[None] if single else x
    m = torch.as_tensor(np.asarray(matrix, dtype=np.float32) if not torch.is_tensor(matrix) else matrix)
    if tuple(m.shape) != (2, 3):
        raise ConfigError(f"alignment matrix must be (2, 3); got {tuple(m.shape)}")
    h, w = dsize if dsize is not None else xb.shape[-2:]
    crop = parse_crop(crop)
    check_crop(crop, int(h), int(w), "the reference frame")
    out = (
        _warp(xb.float(), m.float().to(xb.device)[None].expand(len(xb), 2, 3), (int(h), int(w)))
        if len(xb)
        else xb.float()
    )
    if crop is not None:
        cx, cy, cw, ch = crop
        out = out[:, cy : cy + ch, cx : cx + cw]
    if x.dtype == torch.uint8:
        out = out.round_().clamp_(0, 255).to(torch.uint8)
    elif x.is_floating_point():
        out = out.to(x.dtype)
    if single:
        out = out[0]
    return out.cpu().numpy() if as_numpy else out


def mean_frame(
    video: str | os.PathLike,
    crop: Crop | str | None = None,
    max_frames: int | None = 2000,
    chunk_size: int = 256,
) -> np.ndarray:
    """Mean gray frame of a video (streamed; the first ``max_frames`` frames, all if ``None``).

    Shape:
        -> ``(H, W)`` float32 (the crop's size when given).
    """
    total = None
    count = 0
    with VideoReader(video, crop=crop, timestamps=None) as vr:
        for _, frames in vr.iter_chunks(chunk_size, stop=max_frames):
            s = frames.astype(np.float64).sum(axis=0)
            total = s if total is None else total + s
            count += len(frames)
    if total is None:
        raise DataError(f"no frames decoded from {video}")
    return (total / count).astype(np.float32)
