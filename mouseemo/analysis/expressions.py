"""Analyses of expression similarity: traces around stimuli, frame x frame correlation structure,
and low-dimensional embeddings (the paper's figures, as arrays; plots live in
:mod:`mouseemo.viz.expressions`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mouseemo.data.events import Events
from mouseemo.errors import ConfigError, DataError
from mouseemo.ops.similarity import pearson_similarity


@dataclass
class PeriStimulus:
    """Similarity traces of one stimulus label, aligned to its onsets.

    Attributes:
        label: the stimulus label.
        t: ``(L,)`` seconds relative to onset.
        traces: ``(E, L, K)`` one trace per trial and prototype (NaN outside the recording).
        mean: ``(L, K)`` mean over trials (NaN-aware).
        sem: ``(L, K)`` standard error of the mean over trials.
        names: the ``K`` prototype names.
        onsets: ``(E,)`` onsets used.
    """

    label: str
    t: np.ndarray
    traces: np.ndarray
    mean: np.ndarray
    sem: np.ndarray
    names: list[str]
    onsets: np.ndarray


def mean_sem(x: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """NaN-aware mean and standard error of the mean along ``axis`` (sem is 0 for a single sample)."""
    x = np.asarray(x, dtype=np.float64)
    n = np.sum(np.isfinite(x), axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(x, axis=axis) / n
        dev = np.where(np.isfinite(x), x - np.expand_dims(mean, axis), 0.0)
        var = np.sum(dev**2, axis=axis) / np.maximum(n - 1, 1)
        sem = np.sqrt(var / np.maximum(n, 1))
    mean = np.where(n > 0, mean, np.nan)
    sem = np.where(n > 0, sem, np.nan)
    return mean, sem


def peri_stimulus(
    similarity: np.ndarray,
    times: np.ndarray,
    onsets: Sequence[float],
    window: tuple[float, float] = (-4.0, 10.0),
    dt: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Cut similarity traces around each onset onto a common time base (linear interpolation).

    Args:
        similarity: ``(T, K)`` (or ``(T,)``) similarity traces.
        times: ``(T,)`` increasing frame times.
        onsets: stimulus onsets on the same clock.
        window: ``(before, after)`` seconds relative to onset.
        dt: sample spacing of the output (default: the median frame interval).

    Returns:
        ``(t (L,), traces (E, L, K))``; samples outside the recording are NaN.

    Shape:
        ``(T, K)`` -> ``(E, L, K)``.
    """
    sim = np.asarray(similarity, dtype=np.float64)
    sim = sim[:, None] if sim.ndim == 1 else sim
    times = np.asarray(times, dtype=np.float64)
    if len(times) != len(sim):
        raise DataError(f"{len(times)} times for {len(sim)} similarity rows")
    if len(times) < 2:
        raise DataError("need at least two frames to cut traces")
    if window[1] <= window[0]:
        raise ConfigError(f"window must be (before, after) with before < after; got {window}")
    dt = float(np.median(np.diff(times))) if dt is None else float(dt)
    t = np.arange(window[0], window[1] + dt / 2, dt)
    onsets = np.asarray(onsets, dtype=np.float64)
    out = np.full((len(onsets), len(t), sim.shape[1]), np.nan)
    for e, onset in enumerate(onsets):
        tt = onset + t
        inside = (tt >= times[0]) & (tt <= times[-1])
        for k in range(sim.shape[1]):
            out[e, inside, k] = np.interp(tt[inside], times, sim[:, k])
    return t, out


def similarity_around_stimuli(
    similarity: np.ndarray,
    times: np.ndarray,
    events: Events,
    names: Sequence[str],
    window: tuple[float, float] = (-4.0, 10.0),
    neutral: str = "neutral",
) -> dict[str, PeriStimulus]:
    """Mean +- sem similarity traces aligned to the onsets of each stimulus label.

    Returns:
        label -> :class:`PeriStimulus`, for every non-neutral label in ``events``.
    """
    out: dict[str, PeriStimulus] = {}
    for label in dict.fromkeys(events.label):
        if label == neutral:
            continue
        onsets = np.array([a for a, _ in events.windows(label)])
        t, traces = peri_stimulus(similarity, times, onsets, window)
        mean, sem = mean_sem(traces, axis=0)
        out[label] = PeriStimulus(label, t, traces, mean, sem, list(names), onsets)
    return out


def frame_correlation(
    features: np.ndarray, method: str = "average", optimal_ordering: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame x frame Pearson correlation of HOG features, ordered by hierarchical clustering.

    Args:
        features: ``(T, D)`` HOG features (subsample long videos first: the result is ``T x T``).
        method: scipy linkage method on the correlation distance ``1 - r``.
        optimal_ordering: scipy's leaf-ordering refinement (slow for large ``T``).

    Returns:
        ``(corr (T, T), order (T,), linkage (T-1, 4))``; ``corr[np.ix_(order, order)]`` shows the
        clustered blocks (stimulus frames group together).
    """
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2 or len(feats) < 2:
        raise DataError(f"features must be (T, D) with T >= 2; got {feats.shape}")
    corr = pearson_similarity(feats, feats)
    dist = np.clip(1.0 - corr, 0.0, 2.0)
    np.fill_diagonal(dist, 0.0)
    dist = (dist + dist.T) / 2  # exact symmetry for squareform
    link = linkage(squareform(dist, checks=False), method=method, optimal_ordering=optimal_ordering)
    return corr, leaves_list(link), link


def embed_tsne(
    features: np.ndarray,
    num_pca: int = 100,
    perplexity: float = 30.0,
    seed: int = 0,
) -> np.ndarray:
    """PCA to ``num_pca`` components, then 2-D t-SNE (the paper's per-animal embedding).

    Shape:
        ``(T, D)`` -> ``(T, 2)``.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2 or len(feats) < 5:
        raise DataError(f"t-SNE needs (T, D) features with T >= 5; got {feats.shape}")
    ncomp = int(min(num_pca, feats.shape[0], feats.shape[1]))
    reduced = PCA(n_components=ncomp, random_state=seed).fit_transform(feats)
    perp = float(min(perplexity, (len(feats) - 1) / 3.0))
    return TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed).fit_transform(reduced)


def embed_per_animal(
    features: np.ndarray,
    animals: Sequence[str],
    num_pca: int = 100,
    perplexity: float = 30.0,
    seed: int = 0,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """:func:`embed_tsne` separately for each animal.

    Returns:
        animal -> ``(frame indices into features, embedding (n, 2))``.
    """
    animals = np.asarray(animals)
    if len(animals) != len(features):
        raise DataError(f"{len(animals)} animal names for {len(features)} frames")
    out = {}
    for a in dict.fromkeys(animals.tolist()):
        idx = np.flatnonzero(animals == a)
        out[a] = (idx, embed_tsne(np.asarray(features)[idx], num_pca, perplexity, seed))
    return out
