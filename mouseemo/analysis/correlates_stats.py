"""Statistics of the correlates: Benjamini-Hochberg FDR and the correlations of every neuron with
every trace at every circular shift, from one FFT per row."""

from __future__ import annotations

import numpy as np
from scipy import fft as sp_fft

from mouseemo.errors import DataError


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg q-values (adjusted p-values) of independent or positively dependent tests.

    ``q_(i) = min_{j >= i} p_(j) * m / j`` over the sorted p-values, capped at 1; NaN stays NaN and does
    not count as a test.

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
        order = np.argsort(vals, kind="stable")
        ranked = vals[order] * m / np.arange(1, m + 1)
        adjusted = np.minimum(np.minimum.accumulate(ranked[::-1])[::-1], 1.0)
        out = np.empty(m)
        out[order] = adjusted
        q[ok] = out
    return q.reshape(p.shape)


def standardise_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows centred and scaled to unit L2 norm (float64); also a mask of constant rows (left at 0)."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=-1, keepdims=True)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    flat = norm[..., 0] <= 1e-12 * max(1.0, float(np.abs(x).max(initial=0.0)))
    return np.where(flat[..., None], 0.0, x / np.where(norm > 0, norm, 1.0)), flat


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
    fx = sp_fft.rfft(xs, axis=1, workers=workers or -1)
    fy = sp_fft.rfft(ys, axis=1, workers=workers or -1)
    return sp_fft.irfft(np.conj(fy)[None] * fx[:, None], n=num_t, axis=-1, workers=workers or -1)
