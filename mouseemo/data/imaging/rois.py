"""ROI masks (Suite2p ``stat``), neuropil masks and the traces they extract from a movie.

Pixel ``(y, x)`` of a frame has the flat index ``y * Lx + x`` (C order), which is what
:func:`roi_masks_from_stat` uses and what ``frame.reshape(-1)`` produces.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from scipy import ndimage

from mouseemo.data.imaging.tiff import TiffStack
from mouseemo.errors import ConfigError, DataError


def _roi_pixels(s: dict, i: int, Ly: int, Lx: int) -> tuple[np.ndarray, np.ndarray]:
    ypix = np.asarray(s["ypix"]).astype(np.int64).ravel()
    xpix = np.asarray(s["xpix"]).astype(np.int64).ravel()
    if ypix.shape != xpix.shape:
        raise DataError(f"ROI {i}: ypix and xpix have different lengths ({len(ypix)} vs {len(xpix)})")
    if ypix.size == 0:
        raise DataError(f"ROI {i}: has no pixels")
    if ypix.min() < 0 or xpix.min() < 0 or ypix.max() >= Ly or xpix.max() >= Lx:
        raise DataError(f"ROI {i}: pixels fall outside the {Ly}x{Lx} field of view")
    return ypix, xpix


def roi_masks_from_stat(
    stat: Sequence[dict], Ly: int, Lx: int, weighted: bool = True, exclude_overlap: bool = False
) -> sp.csr_matrix:
    """Sparse ROI masks from Suite2p-style ``stat`` dicts.

    Args:
        stat: per-ROI dicts with ``ypix``, ``xpix`` and (for weighting) ``lam``.
        Ly, Lx: field of view.
        weighted: weights are ``lam`` normalised to sum 1 per ROI (uniform when ``lam`` is absent);
            otherwise every ROI pixel is 1.
        exclude_overlap: drop pixels flagged in ``stat[i]["overlap"]`` (shared with another ROI), as
            Suite2p does by default when it extracts F.

    Returns:
        float32 CSR matrix; row ``i`` is ROI ``i`` over flat pixels ``y * Lx + x``.

    Shape:
        Output: ``(N, Ly*Lx)``.
    """
    rows, cols, vals = [], [], []
    for i, s in enumerate(stat):
        ypix, xpix = _roi_pixels(s, i, Ly, Lx)
        w = np.ones(len(ypix), dtype=np.float64)
        if weighted and s.get("lam") is not None:
            w = np.asarray(s["lam"], dtype=np.float64).ravel()
            if w.shape != ypix.shape:
                raise DataError(f"ROI {i}: lam has {len(w)} values for {len(ypix)} pixels")
        if exclude_overlap and s.get("overlap") is not None:
            keep = ~np.asarray(s["overlap"], dtype=bool).ravel()
            if keep.any():  # a ROI made only of shared pixels keeps them rather than vanishing
                ypix, xpix, w = ypix[keep], xpix[keep], w[keep]
        if weighted:
            total = w.sum()
            if not np.isfinite(total) or total <= 0:
                raise DataError(f"ROI {i}: pixel weights lam do not sum to a positive number")
            w = w / total
        rows.append(np.full(len(ypix), i, dtype=np.int64))
        cols.append(ypix * Lx + xpix)
        vals.append(w)
    num_rois = len(rows)
    if num_rois == 0:
        return sp.csr_matrix((0, Ly * Lx), dtype=np.float32)
    masks = sp.coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(num_rois, Ly * Lx)
    ).tocsr()
    masks.sum_duplicates()
    return masks.astype(np.float32)


def neuropil_masks(
    stat: Sequence[dict] | sp.spmatrix,
    Ly: int,
    Lx: int,
    inner_radius: int = 2,
    min_pixels: int = 350,
    use_stored: bool = True,
) -> sp.csr_matrix:
    """Neuropil masks: the ``min_pixels`` pixels nearest each ROI's centre that belong to no ROI.

    All ROI pixels, grown by ``inner_radius``, are excluded, so each mask is a ring-like region around
    its ROI that contains no soma. Rows are normalised to sum 1 (a plain mean over the region).

    Args:
        stat: Suite2p-style ROI dicts, or ROI masks ``(N, Ly*Lx)`` as from :func:`roi_masks_from_stat`.
        Ly, Lx: field of view.
        inner_radius: gap in pixels between a ROI and its neuropil.
        min_pixels: pixels per neuropil mask (fewer if the field of view has fewer free pixels).
        use_stored: when every ``stat`` dict carries Suite2p's own ``neuropil_mask`` (flat pixel
            indices ``y * Lx + x``), use those instead of building new ones.

    Returns:
        float32 CSR matrix.

    Shape:
        Output: ``(N, Ly*Lx)``.
    """
    if use_stored and not sp.issparse(stat) and len(stat) and all("neuropil_mask" in s for s in stat):
        rows, cols = [], []
        for i, s in enumerate(stat):
            pix = np.asarray(s["neuropil_mask"], dtype=np.int64).ravel()
            if pix.size == 0 or pix.min() < 0 or pix.max() >= Ly * Lx:
                raise DataError(
                    f"ROI {i}: stored neuropil_mask is empty or outside the {Ly}x{Lx} field of view"
                )
            rows.append(np.full(len(pix), i, dtype=np.int64))
            cols.append(pix)
        vals = np.concatenate([np.full(len(c), 1.0 / len(c)) for c in cols])
        return sp.csr_matrix(
            (vals, (np.concatenate(rows), np.concatenate(cols))), shape=(len(stat), Ly * Lx)
        ).astype(np.float32)
    if sp.issparse(stat):
        roi = sp.csr_matrix(stat)
        if roi.shape[1] != Ly * Lx:
            raise DataError(f"neuropil_masks: masks have {roi.shape[1]} pixels, expected {Ly}x{Lx}")
        pix_sets = [roi.indices[roi.indptr[i] : roi.indptr[i + 1]] for i in range(roi.shape[0])]
    else:
        pix_sets = []
        for i, s in enumerate(stat):
            ypix, xpix = _roi_pixels(s, i, Ly, Lx)
            pix_sets.append(ypix * Lx + xpix)
    num_rois = len(pix_sets)
    if num_rois == 0:
        return sp.csr_matrix((0, Ly * Lx), dtype=np.float32)
    occupied = np.zeros(Ly * Lx, dtype=bool)
    for pix in pix_sets:
        occupied[pix] = True
    occupied = occupied.reshape(Ly, Lx)
    if inner_radius > 0:
        r = int(inner_radius)
        yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
        occupied = ndimage.binary_dilation(occupied, structure=(yy**2 + xx**2) <= r * r)
    free = np.flatnonzero(~occupied.ravel())
    free_y, free_x = np.divmod(free, Lx)

    rows, cols, vals = [], [], []
    for i, pix in enumerate(pix_sets):
        if len(free) == 0:
            break
        cy, cx = np.divmod(pix, Lx)
        d2 = (free_y - cy.mean()) ** 2 + (free_x - cx.mean()) ** 2
        k = min(int(min_pixels), len(free))
        sel = np.argpartition(d2, k - 1)[:k] if k < len(free) else np.arange(len(free))
        rows.append(np.full(len(sel), i, dtype=np.int64))
        cols.append(free[sel])
        vals.append(np.full(len(sel), 1.0 / len(sel)))
    if not rows:
        return sp.csr_matrix((num_rois, Ly * Lx), dtype=np.float32)
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(num_rois, Ly * Lx)
    ).astype(np.float32)


def extract_traces(
    stack: TiffStack | np.ndarray,
    masks: sp.spmatrix | np.ndarray,
    chunk_size: int = 256,
    neuropil: bool | sp.spmatrix = False,
    normalize: bool = True,
    neuropil_kw: dict | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Weighted mean of each ROI's pixels in every frame, streaming the movie in chunks.

    Args:
        stack: a :class:`TiffStack`, an array or memmap ``(T, Ly, Lx)``.
        masks: ROI weights ``(N, Ly*Lx)`` (sparse or dense).
        chunk_size: frames read at a time (bounds memory).
        neuropil: False for ROI traces only; True to build masks with :func:`neuropil_masks` from
            ``masks``; or explicit neuropil masks ``(N, Ly*Lx)``.
        normalize: divide each mask row by its sum, so binary masks give the mean over the ROI.
        neuropil_kw: keyword arguments for :func:`neuropil_masks` when ``neuropil=True``.

    Returns:
        ``F`` float32 ``(N, T)``, or ``(F, Fneu)`` when neuropil is asked for.

    Shape:
        stack: ``(T, Ly, Lx)``; masks: ``(N, Ly*Lx)``; output: ``(N, T)``.
    """
    shape = tuple(getattr(stack, "shape", ()))
    if len(shape) != 3:
        raise DataError(f"extract_traces: stack must be (T, Ly, Lx), got shape {shape}")
    num_t, Ly, Lx = shape
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be >= 1, got {chunk_size}")

    def _prep(m, what: str) -> sp.csr_matrix:
        m = sp.csr_matrix(m, dtype=np.float64)  # normalise in float64, multiply in float32
        if m.shape[1] != Ly * Lx:
            raise DataError(
                f"extract_traces: {what} have {m.shape[1]} pixels but frames are {Ly}x{Lx} = {Ly * Lx}"
            )
        if normalize:
            sums = np.asarray(m.sum(axis=1)).ravel()
            if np.any(sums <= 0):
                raise DataError(f"extract_traces: {what} row {int(np.argmin(sums))} has no positive weight")
            m = sp.diags(1.0 / sums) @ m
        return sp.csr_matrix(m, dtype=np.float32)

    roi = _prep(masks, "ROI masks")
    neu = None
    if neuropil is not False and neuropil is not None:
        if neuropil is True:
            neu = _prep(neuropil_masks(roi, Ly, Lx, **(neuropil_kw or {})), "neuropil masks")
        else:
            neu = _prep(neuropil, "neuropil masks")
        if neu.shape[0] != roi.shape[0]:
            raise DataError(f"extract_traces: {neu.shape[0]} neuropil masks for {roi.shape[0]} ROIs")

    F = np.empty((roi.shape[0], num_t), dtype=np.float32)
    Fneu = np.empty((roi.shape[0], num_t), dtype=np.float32) if neu is not None else None
    for a in range(0, num_t, chunk_size):
        b = min(a + chunk_size, num_t)
        # float32 halves the memory of a chunk; sums over a few hundred pixels keep ~1e-6 precision
        chunk = np.asarray(stack[a:b], dtype=np.float32).reshape(b - a, Ly * Lx)
        F[:, a:b] = roi @ chunk.T
        if neu is not None:
            Fneu[:, a:b] = neu @ chunk.T
    return (F, Fneu) if neu is not None else F
