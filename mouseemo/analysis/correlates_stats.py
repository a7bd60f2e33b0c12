"""Statistics of the correlates: Benjamini-Hochberg FDR and the correlations of every neuron with
every trace at every circular shift, from one FFT per row."""

from __future__ import annotations

import numpy as np
from scipy import fft as sp_fft
from scipy import ndimage

from mouseemo.errors import DataError


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg q-values (adjusted p-values) of independent or positively dependent tests.

    ``q_(i) = min_{j >= i} p_(j) * m / j`` over the sorted p-values (at most 1: the largest p-value
    bounds every q-value); NaN stays NaN and does not count as a test. Tied p-values get one q-value.

    Shape:
        any shape -> the same shape.

    Example:
        >>> benjamini_hochberg(np.array([0.01, 0.04, 0.03, 0.5])).round(3).tolist()
        [0.04, 0.053, 0.053, 0.5]
    """
    p = np.asarray(p, dtype=np.float64)
    flat = p.ravel()
    ok = np.isfinite(flat)
    if np.any((flat[ok] < 0) | (flat[ok] > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    q = np.full(flat.shape, np.nan)
    m = int(ok.sum())
    if m:
        vals = flat[ok]
        order = np.argsort(vals)
        ranked = vals[order] * m / np.arange(1, m + 1)
        adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
        out = np.empty(m)
        out[order] = adjusted
        q[ok] = out
    return q.reshape(p.shape)


def standardise_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows centred and scaled to unit L2 norm (float64); also a mask of constant rows (left at 0)."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=-1, keepdims=True)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    # (a centred row with an entry above 1 has a norm above 1: an absolute bound suffices)
    flat = norm[..., 0] <= 1e-12
    return np.divide(x, norm, out=np.zeros_like(x), where=~flat[..., None]), flat


def circular_crosscorrelation(x: np.ndarray, y: np.ndarray, workers: int | None = None) -> np.ndarray:
    """Pearson correlation of every row of ``y`` with every row of ``x`` at every circular shift.

    ``out[n, k, s] = corr(y[k, t], x[n, (t + s) mod T])``: a positive shift pairs the face at ``t`` with
    neural activity ``s`` samples later. Constant rows correlate 0 with everything.

    Args:
        x: neural activity ``(N, T)``.
        y: face traces ``(K, T)`` on the same clock.
        workers: FFT threads (default: all cores).

    Returns:
        float64 ``(N, K, T)``.

    Shape:
        x ``(N, T)``, y ``(K, T)`` -> ``(N, K, T)``.

    Example:
        >>> y = np.sin(np.arange(100) / 5.0)[None]
        >>> x = np.roll(y, 3, axis=1)
        >>> int(circular_crosscorrelation(x, y)[0, 0].argmax())
        3
    """
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise DataError(f"need activity (N, T) and traces (K, T) on one clock; got {x.shape} and {y.shape}")
    num_t = x.shape[1]
    xs, _ = standardise_rows(x)
    ys, _ = standardise_rows(y)
    with sp_fft.set_workers(workers or -1):
        fx = sp_fft.rfft(xs)
        fy = sp_fft.rfft(ys)
        return sp_fft.irfft(np.conj(fy)[None] * fx[:, None], n=num_t)


def remove_slow_baseline(x: np.ndarray, fs: float, window_s: float, smooth_s: float = 2.0) -> np.ndarray:
    """Each row less its slow lower envelope: a running mean of ``smooth_s`` seconds, then a running
    minimum and a running maximum over ``window_s`` seconds (the maximin baseline of dF/F).

    A circular shift of a drifting row puts a step where the recording wraps, which the unshifted row
    lacks; without its drift the row is continuous enough for every shift to be like the true alignment.
    Signals shorter than ``window_s`` (emotion blocks) are kept; a row shorter than the window loses
    only a constant.

    Shape:
        ``(N, T)`` -> ``(N, T)`` float64.

    Example:
        >>> t = np.arange(3000) / 10.0
        >>> x = (t / 60.0 + (np.sin(t) > 0.9))[None]  # events on a linear drift
        >>> y = remove_slow_baseline(x, 10.0, 60.0)
        >>> bool(np.ptp(y[0, 600:2400]) < 1.2 < np.ptp(x[0, 600:2400]))
        True
    """
    x = np.asarray(x, dtype=np.float64)
    win = max(1, min(int(round(window_s * fs)), x.shape[1]))
    smooth = ndimage.uniform_filter1d(x, max(1, int(round(smooth_s * fs))), axis=1, mode="reflect")
    base = ndimage.maximum_filter1d(ndimage.minimum_filter1d(smooth, win, axis=1), win, axis=1)
    return x - base


def activity_skewness(x: np.ndarray) -> np.ndarray:
    """Skewness of each row: rare events and bursts make it large, busy or Gaussian activity small."""
    x = np.asarray(x, dtype=np.float64)
    c = x - x.mean(axis=1, keepdims=True)
    sd = np.sqrt((c**2).mean(axis=1))
    return (c**3).mean(axis=1) / np.where(sd > 0, sd, 1.0) ** 3


def pooled_pvalues(
    z: np.ndarray,
    pools: np.ndarray,
    shape: np.ndarray,
    live: np.ndarray,
    strata: int,
    min_pairs: int,
    in_pool: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """p-value of each pair's ``z`` among the standardised null of its trace's pairs of a similar ``shape``.

    Per trace, the live neurons are sorted by ``shape`` (e.g. the skewness of their activity) and cut
    into up to ``strata`` groups of at least ``min_pairs``; a pair's p-value is the fraction of its
    group's pooled null values (every pair of the group that is ``in_pool``, at every pooled shift) at
    or above its ``z``, counting itself. ``strata=1`` pools every live pair of a trace.

    Returns:
        ``(p (N, K), smallest pool size)``; neurons that are not live get 1.

    Shape:
        z, in_pool ``(N, K)``; pools ``(N, K, P)``; shape, live ``(N,)``.
    """
    p = np.ones(z.shape)
    idx = np.flatnonzero(live)
    if idx.size == 0:
        return p, 0
    num_groups = max(1, min(strata, idx.size // max(min_pairs, 1)))
    shape = np.broadcast_to(shape.reshape(len(z), -1), z.shape)
    in_pool = np.ones(z.shape, bool) if in_pool is None else in_pool
    smallest = pools.shape[2] * idx.size
    for k in range(z.shape[1]):
        order = idx[np.argsort(shape[idx, k], kind="stable")]
        for grp in np.array_split(order, num_groups):
            keep = grp[in_pool[grp, k]] if in_pool[grp, k].any() else grp
            pool = np.sort(pools[keep, k].ravel())
            above = len(pool) - np.searchsorted(pool, (z[grp, k] - 1e-9).astype(pool.dtype), side="left")
            p[grp, k] = (above + 1.0) / (len(pool) + 1.0)
            smallest = min(smallest, len(pool))
    return p, smallest
