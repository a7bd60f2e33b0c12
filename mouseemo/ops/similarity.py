"""Pearson similarity of feature vectors to prototypes, and min-max scaling of traces.

The similarity of a frame to a prototype is the Pearson correlation of their HOG vectors (Dolensek et
al. 2020): both are centred and scaled to unit norm, then a single matrix product gives every
frame x prototype pair at once, on whatever device the features live.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["PearsonSimilarity", "expression_intensity", "minmax_scale", "pearson_similarity"]


def _standardise(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Rows centred and scaled to unit L2 norm; constant rows become all zeros."""
    x = x - x.mean(dim=-1, keepdim=True)
    norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    # A constant row (a blank frame has an all-zero HOG) has no defined correlation; a zero row makes
    # its similarity 0 rather than NaN, which would poison arg-max and min-max scaling downstream.
    return torch.where(norm > eps, x / norm.clamp_min(eps), torch.zeros_like(x))


def pearson_similarity(
    features: torch.Tensor | np.ndarray,
    prototypes: torch.Tensor | np.ndarray,
    accumulate_float64: bool = False,
    eps: float = 1e-12,
) -> torch.Tensor | np.ndarray:
    """Pearson correlation of every feature vector with every prototype.

    Args:
        features: ``(B, D)`` or ``(D,)`` feature vectors (HOG of frames).
        prototypes: ``(K, D)`` or ``(D,)`` prototype vectors.
        accumulate_float64: centre, normalise and multiply in float64 (then cast back to the input's
            floating dtype). Float32 is accurate to ~1e-6 for HOG-sized vectors; use float64 for
            bit-level comparisons with numpy.
        eps: norms below this count as a constant vector, whose correlation is defined as 0.

    Returns:
        ``(B, K)`` correlations in ``[-1, 1]``; a 1-D argument drops its axis. Torch inputs give a
        tensor on the features' device (float32 unless the input is float64); numpy inputs give a
        float64 numpy array.

    Raises:
        ValueError: wrong number of dimensions, or feature lengths that differ.

    Shape:
        - features: ``(B, D)`` or ``(D,)``
        - prototypes: ``(K, D)`` or ``(D,)``
        - output: ``(B, K)``, ``(B,)``, ``(K,)`` or ``()``

    Example:
        >>> f = torch.randn(5, 64)
        >>> pearson_similarity(f, f[:2]).shape
        torch.Size([5, 2])
    """
    as_numpy = not torch.is_tensor(features)
    f = torch.as_tensor(np.asarray(features) if as_numpy else features)
    device = f.device
    p = torch.as_tensor(prototypes).to(device)
    if f.ndim not in (1, 2) or p.ndim not in (1, 2):
        raise ValueError(
            f"features must be (B, D) or (D,) and prototypes (K, D) or (D,); got {tuple(f.shape)} "
            f"and {tuple(p.shape)}"
        )
    if f.shape[-1] != p.shape[-1]:
        raise ValueError(
            f"feature length {f.shape[-1]} does not match prototype length {p.shape[-1]} "
            "(built with different HOG parameters or frame size?)"
        )
    out_dtype = f.dtype if f.dtype.is_floating_point else torch.float32
    if as_numpy or accumulate_float64:
        work = torch.float64
    else:
        work = torch.promote_types(out_dtype, p.dtype if p.dtype.is_floating_point else torch.float32)
    f2 = _standardise((f if f.ndim == 2 else f[None]).to(work), eps)
    p2 = _standardise((p if p.ndim == 2 else p[None]).to(work), eps)
    sim = (f2 @ p2.T).clamp_(-1.0, 1.0)
    if f.ndim == 1:
        sim = sim[0]
    if p.ndim == 1:
        sim = sim[..., 0]
    if as_numpy:
        return sim.cpu().numpy()
    return sim.to(out_dtype)


def expression_intensity(
    features: torch.Tensor | np.ndarray,
    prototypes: torch.Tensor | np.ndarray,
    neutral_index: int = 0,
    max_iter: int = 1000,
    tol: float = 1e-10,
) -> torch.Tensor | np.ndarray:
    """How much of each prototypical expression a frame holds: non-negative unmixing against neutral.

    Each frame's features are written as the neutral prototype plus a non-negative combination of the
    expression directions ``prototype_k - neutral``, in the least-squares sense::

        c = argmin_{c >= 0} || f - n - sum_k c_k (p_k - n) ||^2

    ``c_k`` is 0 for a neutral face and about 1 for a face like prototype ``k``. Pearson similarities
    to the prototypes share a large common part (every expression is "not neutral"), so they move
    together; the unmixed intensities separate expressions that share features.

    Solved exactly (to ``tol``) by coordinate descent on the ``K' x K'`` Gram matrix, vectorised over
    frames, on the features' device.

    Args:
        features: ``(B, D)`` feature vectors (HOG of frames).
        prototypes: ``(K, D)`` prototypes, the neutral one included.
        neutral_index: row of ``prototypes`` that is neutral.
        max_iter: sweeps over the expressions at most.
        tol: stop when no coefficient moves by more than this in a sweep.

    Returns:
        ``(B, K - 1)`` intensities of the non-neutral prototypes, in their order. Torch in, torch out
        (float32 unless float64 came in); numpy in, float64 numpy out.

    Raises:
        ValueError: wrong shapes, or an expression prototype equal to the neutral one.

    Shape:
        features ``(B, D)``, prototypes ``(K, D)`` -> ``(B, K - 1)``.

    Example:
        >>> n, a, b = torch.eye(3)
        >>> expression_intensity((n + 0.5 * (a - n))[None], torch.stack([n, a, b])).round(decimals=3)
        tensor([[0.5000, 0.0000]])
    """
    as_numpy = not torch.is_tensor(features)
    f = torch.as_tensor(np.asarray(features) if as_numpy else features)
    p = torch.as_tensor(np.asarray(prototypes) if not torch.is_tensor(prototypes) else prototypes).to(
        f.device
    )
    if f.ndim != 2 or p.ndim != 2 or f.shape[1] != p.shape[1]:
        raise ValueError(
            f"features must be (B, D) and prototypes (K, D) with the same D; got {tuple(f.shape)} and "
            f"{tuple(p.shape)}"
        )
    num_k = p.shape[0]
    if not 0 <= neutral_index < num_k:
        raise ValueError(f"neutral_index {neutral_index} out of range for {num_k} prototypes")
    out_dtype = torch.float64 if (as_numpy or f.dtype == torch.float64) else torch.float32
    f = f.to(torch.float64)
    p = p.to(torch.float64)
    neutral = p[neutral_index]
    others = [k for k in range(num_k) if k != neutral_index]
    directions = p[others] - neutral  # (K', D)
    gram = directions @ directions.T
    diag = torch.diagonal(gram)
    if len(others) and bool((diag <= 1e-20).any()):
        raise ValueError("an expression prototype equals the neutral one: its intensity is undefined")
    rhs = (f - neutral) @ directions.T  # (B, K')
    c = torch.zeros_like(rhs)
    for _ in range(max_iter if len(others) else 0):
        moved = torch.zeros((), dtype=c.dtype, device=c.device)
        for k in range(len(others)):
            new = (c[:, k] + (rhs[:, k] - c @ gram[:, k]) / diag[k]).clamp_min(0.0)
            moved = torch.maximum(moved, (new - c[:, k]).abs().max())
            c[:, k] = new
        if float(moved) <= tol:
            break
    if len(others):
        c = _polish_on_support(c, gram, rhs)
    c = c.to(out_dtype)
    return c.cpu().numpy() if as_numpy else c


def _polish_on_support(c: torch.Tensor, gram: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Exact least squares on each frame's non-zero coefficients, where that stays feasible.

    Coordinate descent finds the support quickly but converges slowly in it when expression
    directions are nearly collinear; solving the normal equations on the support finishes the job.
    Frames are grouped by support (few distinct ones), one solve per group.
    """
    support = c > 0
    patterns, inverse = torch.unique(support, dim=0, return_inverse=True)
    out = c.clone()
    for g, pattern in enumerate(patterns):
        if not bool(pattern.any()):
            continue
        rows = inverse == g
        sub = gram[pattern][:, pattern]
        sol = torch.linalg.solve(sub, rhs[rows][:, pattern].T).T
        full = torch.zeros_like(c[rows])
        full[:, pattern] = sol
        grad = rhs[rows] - full @ gram  # KKT: <= 0 off the support
        scale = rhs[rows].abs().amax(dim=1) + 1e-300
        ok = (sol >= 0).all(dim=1) & ((grad[:, ~pattern] <= 1e-9 * scale[:, None]).all(dim=1))
        out[rows] = torch.where(ok[:, None], full, c[rows])
    return out


def minmax_scale(
    traces: torch.Tensor | np.ndarray, axis: int = 0, eps: float = 1e-12
) -> torch.Tensor | np.ndarray:
    """Scale ``traces`` to ``[0, 1]`` along ``axis`` (how the paper plots similarity traces).

    NaNs are ignored when finding the range and stay NaN; a constant trace becomes all zeros.

    Shape:
        any shape -> the same shape (``(T, K)`` with ``axis=0`` scales each prototype's trace).

    Example:
        >>> minmax_scale(np.array([[1.0], [3.0], [2.0]]))[:, 0].tolist()
        [0.0, 1.0, 0.5]
    """
    if torch.is_tensor(traces):
        x = traces if traces.dtype.is_floating_point else traces.float()
        lo = torch.where(torch.isnan(x), torch.full_like(x, float("inf")), x).amin(dim=axis, keepdim=True)
        hi = torch.where(torch.isnan(x), torch.full_like(x, float("-inf")), x).amax(dim=axis, keepdim=True)
        span = hi - lo
        out = torch.where(span > eps, (x - lo) / span.clamp_min(eps), torch.zeros_like(x))
        return torch.where(torch.isnan(x), x, out)  # NaN stays NaN, also in all-NaN or constant traces
    x = np.asarray(traces, dtype=np.float64)
    if x.size == 0:
        return x.copy()
    with np.errstate(invalid="ignore"):
        all_nan = np.all(np.isnan(x), axis=axis, keepdims=True)
        filled = np.where(np.isnan(x), 0.0, x)
        lo = np.where(all_nan, 0.0, np.min(np.where(np.isnan(x), np.inf, filled), axis=axis, keepdims=True))
        hi = np.where(all_nan, 0.0, np.max(np.where(np.isnan(x), -np.inf, filled), axis=axis, keepdims=True))
        span = hi - lo
        out = np.where(span > eps, (x - lo) / np.where(span > eps, span, 1.0), 0.0)
    out[np.isnan(x)] = np.nan
    return out


class PearsonSimilarity(nn.Module):
    """:func:`pearson_similarity` against fixed prototypes held as a buffer.

    Args:
        prototypes: ``(K, D)`` prototype matrix.
        accumulate_float64: see :func:`pearson_similarity`.

    Shape:
        - input: ``(B, D)``
        - output: ``(B, K)``

    Example:
        >>> sim = PearsonSimilarity(torch.randn(3, 16))
        >>> sim(torch.randn(4, 16)).shape
        torch.Size([4, 3])
    """

    def __init__(self, prototypes: torch.Tensor | np.ndarray, accumulate_float64: bool = False) -> None:
        super().__init__()
        p = torch.as_tensor(np.asarray(prototypes) if not torch.is_tensor(prototypes) else prototypes)
        if p.ndim != 2:
            raise ValueError(f"prototypes must be (K, D); got {tuple(p.shape)}")
        self.register_buffer("prototypes", p.float())
        self.accumulate_float64 = accumulate_float64

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return pearson_similarity(features, self.prototypes, accumulate_float64=self.accumulate_float64)
