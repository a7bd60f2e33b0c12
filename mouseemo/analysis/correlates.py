"""Neuron–expression correlates: which neurons go with which facial expression.

The analysis of Dolensek et al. (2020), made explicit:

1. Each emotion's trace (similarity to its prototype, the prototype's unmixed intensity, or a
   classifier's probability) is moved from the camera clock onto the imaging clock
   (:func:`traces_on_imaging_clock`: bin means, since the camera is usually faster).
2. Every neuron's activity is correlated (Pearson) with every trace, optionally at several lags
   (neural activity following the face by ``lag`` seconds).
3. Significance comes from a circular-shift null (each neuron's slow baseline, over
   :data:`BASELINE_WINDOW_S`, taken off first, so that a drift makes no step where the recording
   wraps): the neural traces are rotated against the face traces, which keeps the autocorrelation of both (slow calcium, long expressions) and breaks only
   their alignment. Each (neuron, emotion) pair takes its best correlation over the lags, at the true
   alignment and at every shift. By default every shift is used, the shifts near the true alignment
   included (leaving them out, as is often done, makes p-values of autocorrelated signals too small:
   the true alignment then competes only with far shifts, while its own neighbourhood is as good as
   it).
4. The default test (``test="pairs"``) tests every (neuron, emotion) pair on its own, with
   Benjamini–Hochberg over all ``N x K`` pairs. A pair's correlation is expressed in standard
   deviations of its own circular-shift null (``z``), and its p-value is the fraction of a pooled null
   that reaches ``z``: the null of every pair of that emotion whose neuron has a similar activity
   shape, at every shift, each in its own standard deviations. The neurons are cut into
   :data:`STRATA` groups by the skewness of their activity, and pairs that are clearly correlated
   (own-shift rank below :data:`POOL_MIN_P`) lend no null, not even to their own pool: a tuned pair's
   shifts that land its responses on other bouts of the same emotion would make its own null heavy.
   For an untuned pair that stands out by chance this leaves a slightly light pool, which
   ``benchmarks/correlates.py --calibration`` shows in the deep tail (p < 0.001). Pooling gives the tail the resolution that
   one pair's own shifts cannot: a pair's rank among its own shifts is rarely below ``(width of its
   correlation peak) / T``, which on a 4-minute session is above what BH over a thousand pairs needs.
   Grouping keeps the pool exchangeable with the pair: rare-event and bursty neurons have a
   heavier-tailed null than busy ones, and against a pool of every pair (``strata=1``) their p-values
   are too small (``benchmarks/correlates.py --calibration`` measures it). Each pair is still
   judged against its own emotion's null, and a neuron tuned to one stimulus does not pay for the
   shifts that land its responses on another emotion's stimulus. A neuron is significant when one of
   its pairs is (q < ``alpha``), and its preferred emotion is its best pair (smallest p-value, ties
   broken by ``z``); the other significant pairs are in ``q_pair`` (mixed neurons).

   ``test="neurons"`` is the stricter exact test: a neuron's p-value is its smallest pair rank
   p-value judged against the smallest one at every shift (min-p, Westfall & Young), corrected with
   BH across neurons. It is exact, but pays for every emotion tried, and its p-values are rarely
   below ``K x (width of the correlation peak) / T``: short recordings find little.

   ``benchmarks/correlates.py`` measures recall and precision of both tests on synthetic sessions
   (docs/results.md has the table) and, with ``--calibration``, the calibration of the null.

All correlations at all circular shifts come from one FFT per neuron and trace
(:func:`mouseemo.analysis.correlates_stats.circular_crosscorrelation`), so 1000 or all possible shifts cost the same.

On synthetic sessions, :func:`mouseemo.analysis.correlates_truth.compare_with_truth` scores the result against ``truth/neurons.csv``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import rankdata

from mouseemo.analysis import correlates_stats as stats
from mouseemo.analysis.correlates_stats import benjamini_hochberg, circular_crosscorrelation, standardise_rows
from mouseemo.data.clock_alignment import ClockAlignment, align_clocks
from mouseemo.data.sync import resample
from mouseemo.errors import ConfigError, DataError

__all__ = [
    "TESTS",
    "CorrelatesResult",
    "correlate_neurons",
    "traces_on_imaging_clock",
]

TAILS = ("greater", "two-sided")

#: Significance tests: per (neuron, trace) pair with a pooled null (default), or per neuron (min-p).
TESTS = ("pairs", "neurons")

#: Shifts per (neuron, trace) pair that enter its trace's pooled null (evenly spaced when there are more).
POOL_SHIFTS = 4000

#: Groups of neurons of similar activity skewness whose pairs with a trace pool their null.
STRATA = 10

#: Fewest pairs in one such group.
MIN_STRATUM = 20

#: Pairs whose rank among their own shifts is below this lend no null to the pool (tuned pairs: their
#: shifts that land a response on another bout of the same emotion would thicken the pool's tail).
POOL_MIN_P = 0.05

#: Window (s) of the running minimum-then-maximum baseline taken off each neuron before the null: longer
#: than the longest emotion block, so slow emotion signals stay, shorter than a session's drift.
BASELINE_WINDOW_S = 120.0

#: Most circular shifts used when every shift is asked for (longer recordings draw this many).
MAX_SHIFTS = 20000
NONE = "none"


# --------------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------------


@dataclass
class CorrelatesResult:
    """Per-neuron correlates of the face traces.

    Attributes:
        names: the ``K`` traces tested (emotion names).
        neuron_ids: ``(N,)`` source ROI index of each neuron (Suite2p row in ``F.npy``).
        r: ``(N, K)`` correlation with each trace at that pair's best lag.
        lag_s: ``(N, K)`` that best lag in seconds (neural activity follows the face by ``lag_s``).
        best: ``(N,)`` index into ``names`` of each neuron's best trace: the smallest ``p_pair``,
            ties broken by ``z``.
        stat: ``(N,)`` the correlation with the best trace (``|r|`` when two-sided).
        p: ``(N,)`` the neuron's p-value. Pair test: its best pair's ``p_pair`` (uncorrected: ``q``
            accounts for every pair). Neuron test: min-p over traces, judged against the same minimum
            at every shift.
        p_pair: ``(N, K)`` each pair's p-value in the test used: against its trace's pooled null (pair
            test), or its rank among its own shifts (neuron test, = ``p_shift``); uncorrected.
        q: ``(N,)`` the decision's q-value: the best pair's ``q_pair`` (pair test), or BH of ``p``
            across neurons (neuron test).
        significant: ``(N,)`` ``q < alpha`` (and a positive correlation when one-sided).
        lags_s: the lags swept, in seconds.
        shifts_s: the circular shifts of the null, in seconds.
        fs: imaging frame rate used to turn lags and shifts into samples.
        alpha, tail: the test's settings.
        null_minp: ``(N, S)`` the min-p over traces at every shift (the null of ``p``).
        z: ``(N, K)`` each pair's best correlation in standard deviations of its null.
        q_pair: ``(N, K)`` Benjamini–Hochberg q-values of ``p_pair`` over all pairs.
        p_shift: ``(N, K)`` each pair's rank p-value among its own alignments (exact, coarse).
        test: ``"pairs"`` or ``"neurons"``.
    """

    names: list[str]
    neuron_ids: np.ndarray
    r: np.ndarray
    lag_s: np.ndarray
    best: np.ndarray
    stat: np.ndarray
    p: np.ndarray
    p_pair: np.ndarray
    q: np.ndarray
    significant: np.ndarray
    lags_s: np.ndarray
    shifts_s: np.ndarray
    fs: float
    alpha: float
    tail: str
    null_minp: np.ndarray = field(repr=False)
    z: np.ndarray = field(repr=False, default=None)
    q_pair: np.ndarray = field(repr=False, default=None)
    p_shift: np.ndarray = field(repr=False, default=None)
    test: str = "pairs"

    @property
    def num_neurons(self) -> int:
        return len(self.neuron_ids)

    @property
    def preferred(self) -> list[str]:
        """Each neuron's preferred trace name, ``none`` when not significant."""
        return [self.names[b] if s else NONE for b, s in zip(self.best, self.significant)]

    @property
    def r_best(self) -> np.ndarray:
        """``(N,)`` correlation with the best trace (signed)."""
        return self.r[np.arange(self.num_neurons), self.best]

    @property
    def lag_best(self) -> np.ndarray:
        return self.lag_s[np.arange(self.num_neurons), self.best]

    def counts(self) -> dict[str, int]:
        """Neurons per preferred emotion (and ``none``), in ``names`` order."""
        pref = self.preferred
        out = {name: int(sum(p == name for p in pref)) for name in self.names}
        out[NONE] = int(sum(p == NONE for p in pref))
        return out

    def fractions(self) -> dict[str, float]:
        """Fraction of all neurons per preferred emotion (and ``none``)."""
        n = max(self.num_neurons, 1)
        return {k: v / n for k, v in self.counts().items()}

    def rows(self) -> tuple[list[str], list[list]]:
        """Header and rows of ``neurons.csv``."""
        header = ["neuron", "preferred", "r", "lag_s", "p", "q", "significant"]
        header += [f"r_{n}" for n in self.names] + [f"p_{n}" for n in self.names]
        header += [f"q_{n}" for n in self.names]
        rows = []
        pref = self.preferred
        for i in range(self.num_neurons):
            rows.append(
                [
                    int(self.neuron_ids[i]),
                    pref[i],
                    f"{self.r_best[i]:.5f}",
                    f"{self.lag_best[i]:.4f}",
                    f"{self.p[i]:.6g}",
                    f"{self.q[i]:.6g}",
                    int(bool(self.significant[i])),
                    *[f"{v:.5f}" for v in self.r[i]],
                    *[f"{v:.6g}" for v in self.p_pair[i]],
                    *[f"{v:.6g}" for v in self.q_pair[i]],
                ]
            )
        return header, rows


def _check_finite(arr: np.ndarray, what: str, names: Sequence[str] | None = None) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        label = names[row] if names is not None else f"row {row}"
        raise DataError(
            f"{what} contain NaN or inf ({int(bad.sum())} values; first: {label} at sample {col}); "
            "fill or drop those samples first"
        )


def correlate_neurons(
    activity: np.ndarray,
    traces: np.ndarray,
    fs: float,
    names: Sequence[str] | None = None,
    neuron_ids: Sequence[int] | None = None,
    lags_s: Sequence[float] = (0.0,),
    num_shifts: int | None = None,
    min_shift_s: float = 0.0,
    alpha: float = 0.05,
    tail: str = "greater",
    seed: int = 0,
    max_chunk_bytes: int = 256 * 2**20,
    test: str = "pairs",
    strata: int | None = None,
) -> CorrelatesResult:
    """Correlate every neuron with every face trace; circular-shift null; Benjamini–Hochberg FDR.

    Args:
        activity: neural activity on the imaging clock ``(N, T)`` (dF/F, deconvolved, ...).
        traces: face traces on the same clock ``(K, T)``.
        fs: imaging frame rate in Hz (lags and shifts are given in seconds).
        names: the ``K`` trace names (default ``trace0 ...``).
        neuron_ids: ``(N,)`` ids written out (default ``0 .. N-1``).
        lags_s: lags to sweep; the statistic is the best over them (``(0,)`` for no sweep).
        num_shifts: circular shifts in the null, drawn without replacement; ``None`` for every shift
            (at most :data:`MAX_SHIFTS`). A neuron's p-value is no smaller than about ``K / (S + 1)``,
            so more shifts resolve smaller p-values.
        min_shift_s: shortest shift. ``0`` (every shift) gives an exact test. Leaving out the shifts
            near the true alignment, as is often done, makes p-values of autocorrelated signals too
            small: the true alignment then competes only with shifts far from it, while each of those
            has near-copies of itself in the null.
        alpha: false discovery rate.
        tail: ``"greater"`` (neurons excited with the expression) or ``"two-sided"``.
        seed: draws the shifts.
        max_chunk_bytes: bound on the memory of one block of neurons' cross-correlations.
        test: ``"pairs"`` (default): every (neuron, trace) pair is tested against the pooled null of
            its trace and BH runs over all ``N x K`` pairs; ``"neurons"``: one exact min-p test per
            neuron over all traces, BH across neurons (see the module docstring).
        strata: pair test: groups of neurons, by the skewness of their activity, whose pairs pool
            their null (at least :data:`MIN_STRATUM` neurons each); ``None`` for :data:`STRATA`, ``1``
            for one pool of every pair of a trace.

    Returns:
        :class:`CorrelatesResult`.

    Raises:
        DataError: shapes that do not match, NaN/inf, too few samples for the shifts asked for.
        ConfigError: invalid settings.

    Warns:
        UserWarning: the recording is too short for the test: its smallest achievable p-value is above
            ``alpha / m`` (``m`` tests), so a lone selective neuron can never be significant.

    Shape:
        activity ``(N, T)``, traces ``(K, T)``.
    """
    activity = np.asarray(activity)
    traces = np.asarray(traces)
    if activity.ndim != 2:
        raise DataError(f"activity must be (neurons, frames); got shape {activity.shape}")
    if traces.ndim == 1:
        traces = traces[None]
    if traces.ndim != 2 or traces.shape[1] != activity.shape[1]:
        raise DataError(
            f"traces {traces.shape} and activity {activity.shape} are not on one clock "
            "(need (K, T) and (N, T) with the same T)"
        )
    num_n, num_t = activity.shape
    num_k = traces.shape[0]
    names = list(names) if names is not None else [f"trace{k}" for k in range(num_k)]
    if len(names) != num_k:
        raise ConfigError(f"{len(names)} names for {num_k} traces")
    ids = np.arange(num_n) if neuron_ids is None else np.asarray(neuron_ids, dtype=np.int64)
    if ids.shape != (num_n,):
        raise DataError(f"{len(ids)} neuron ids for {num_n} neurons")
    if num_n == 0:
        raise DataError("no neurons to correlate")
    if num_k == 0:
        raise DataError("no face traces to correlate with")
    _check_finite(activity, "neural traces", [f"neuron {i}" for i in ids])
    _check_finite(traces, "face traces", names)
    if not np.isfinite(fs) or fs <= 0:
        raise ConfigError(f"imaging frame rate must be positive; got {fs}")
    if tail not in TAILS:
        raise ConfigError(f"tail must be one of {list(TAILS)}; got {tail!r}")
    if test not in TESTS:
        raise ConfigError(f"test must be one of {list(TESTS)}; got {test!r}")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be in (0, 1); got {alpha}")
    if strata is not None and strata < 1:
        raise ConfigError(f"strata must be >= 1; got {strata}")
    if num_shifts is not None and num_shifts < 1:
        raise ConfigError(f"num_shifts must be >= 1 (or None for every shift); got {num_shifts}")

    lag_samples = np.unique(np.round(np.asarray(lags_s, dtype=np.float64) * fs).astype(np.int64))
    if lag_samples.size == 0:
        raise ConfigError("lags_s is empty; use (0,) for no lag sweep")
    if np.abs(lag_samples).max() >= num_t // 4:
        raise ConfigError(
            f"lags up to {np.abs(lag_samples).max() / fs:.1f} s are too long for {num_t / fs:.1f} s of data"
        )
    lo = max(int(np.ceil(min_shift_s * fs)), 1)
    allowed = np.arange(lo, num_t - lo + 1)
    if allowed.size == 0:
        raise DataError(
            f"{num_t / fs:.1f} s of overlapping data is too short for circular shifts of at least "
            f"{min_shift_s} s; record longer or lower min_shift_s"
        )
    rng = np.random.default_rng(seed)
    want = min(allowed.size, MAX_SHIFTS) if num_shifts is None else num_shifts
    if allowed.size <= want:
        shifts = allowed
        if allowed.size < want:
            warnings.warn(
                f"only {allowed.size} circular shifts fit in {num_t / fs:.1f} s of data; using all of them "
                f"(p-values no smaller than {1 / (allowed.size + 1):.2g})",
                stacklevel=2,
            )
    else:
        shifts = np.sort(rng.choice(allowed, size=want, replace=False))

    # a slow baseline off each neuron (a drift would make a step where the shifted recording wraps)
    activity = stats.remove_slow_baseline(activity, fs, BASELINE_WINDOW_S)
    _, flat_x = standardise_rows(activity)
    _, flat_y = standardise_rows(traces)
    if flat_y.any():
        warnings.warn(
            f"face trace(s) {[n for n, f in zip(names, flat_y) if f]} are constant: they correlate 0",
            stacklevel=2,
        )
    r = np.zeros((num_n, num_k))
    lag_of = np.zeros((num_n, num_k))
    z = np.zeros((num_n, num_k))
    p_pair = np.ones((num_n, num_k))
    null_minp = np.ones((num_n, len(shifts)))
    p_neuron = np.ones(num_n)
    num_s = len(shifts)
    # the pooled null of each trace: every pair's null at (up to POOL_SHIFTS) shifts, in its own SDs
    pool_at = np.unique(np.linspace(0, num_s - 1, min(num_s, POOL_SHIFTS)).round().astype(np.int64))
    pools = np.zeros((num_n, num_k, len(pool_at)), np.float32)
    # bytes per neuron: the cross-correlations and their FFTs, and the (K, S, L) null windows
    per_neuron = max(num_k * num_t * 8 * 3, num_k * (num_s + 1) * (len(lag_samples) + 4) * 8)
    chunk = max(1, int(max_chunk_bytes // per_neuron))
    two_sided = tail == "two-sided"
    # observed lags, and every shift's window of lags (shift + lag), as indices into the shifts
    obs_idx = lag_samples % num_t
    null_idx = (shifts[:, None] + lag_samples[None, :]) % num_t  # (S, L)
    for a in range(0, num_n, chunk):
        b = min(a + chunk, num_n)
        cc = circular_crosscorrelation(activity[a:b], traces)  # (n, K, T)
        score = np.abs(cc) if two_sided else cc
        obs = score[:, :, obs_idx]  # (n, K, L)
        j = obs.argmax(axis=2)
        r[a:b] = np.take_along_axis(cc[:, :, obs_idx], j[..., None], axis=2)[..., 0]
        lag_of[a:b] = lag_samples[j] / fs
        obs_best = obs.max(axis=2)  # (n, K)
        null = score[:, :, null_idx].max(axis=3)  # (n, K, S): the same best-over-lags at every shift
        mu, sd = null.mean(axis=2), null.std(axis=2)
        sd_safe = np.where(sd > 0, sd, 1.0)
        z[a:b] = (obs_best - mu) / sd_safe
        pools[a:b] = (null[:, :, pool_at] - mu[..., None]) / sd_safe[..., None]
        # every alignment's per-trace p-value among all of them (the true one included), then the best
        # trace: the true alignment and the shifts are exchangeable under the null, so counting how
        # many alignments have a minimum at least as small gives an exact min-p test
        pooled = np.concatenate([obs_best[..., None], null], axis=2)  # (n, K, S + 1)
        p_all = (num_s + 2 - rankdata(pooled, method="min", axis=2)) / (num_s + 1.0)
        p_pair[a:b] = p_all[..., 0]
        minp = p_all.min(axis=1)  # (n, S + 1)
        null_minp[a:b] = minp[:, 1:]
        p_neuron[a:b] = (minp <= minp[:, :1] + 1e-12).sum(axis=1) / (num_s + 1.0)
    p_shift = p_pair.copy()
    if test == "pairs":
        # each pair's correlation in SDs of its own circular-shift null, judged against the standardised
        # null of the pairs of its trace whose neurons fire alike (a far finer tail than its own shifts)
        shape, in_pool = stats.activity_skewness(activity), p_shift >= POOL_MIN_P
        groups = STRATA if strata is None else strata
        p_pair, smallest = stats.pooled_pvalues(z, pools, shape, ~flat_x, groups, MIN_STRATUM, in_pool)
        p_pair[:, flat_y] = 1.0
        q_pair = benjamini_hochberg(p_pair)
        p_min, num_tests = 1.0 / (smallest + 1.0), num_n * num_k
    else:
        q_pair = benjamini_hochberg(p_pair)
        p_min, num_tests = 1.0 / (num_s + 1.0), num_n
    if p_min > alpha / num_tests:
        warnings.warn(
            f"{num_t / fs:.1f} s of data is too short for the '{test}' test: its smallest achievable "
            f"p-value is {p_min:.2g}, above alpha / {num_tests} tests = {alpha / num_tests:.2g}, so a lone "
            "selective neuron cannot be significant; record longer"
            + (" or use test='pairs'" if test == "neurons" else ""),
            stacklevel=2,
        )
    # the best trace: smallest pair p-value, ties broken by the correlation in null SDs
    best = np.lexsort((-z, p_pair), axis=1)[:, 0] if num_k > 1 else np.zeros(num_n, dtype=np.int64)
    rows_n = np.arange(num_n)
    stat = (np.abs(r) if two_sided else r)[rows_n, best]
    if test == "pairs":
        p, q = p_pair[rows_n, best], q_pair[rows_n, best]
    else:
        # min-p over traces (Westfall & Young): each trace is judged against its own null before
        # taking the best, so one heavy-tailed trace cannot mask a clear response to another
        p = p_neuron
        p[flat_x] = 1.0
        q = benjamini_hochberg(p)
    significant = q < alpha
    if not two_sided:
        significant &= stat > 0
    return CorrelatesResult(
        names=names,
        neuron_ids=ids,
        r=r,
        lag_s=lag_of,
        best=best,
        stat=stat,
        p=p,
        p_pair=p_pair,
        q=q,
        significant=significant,
        lags_s=lag_samples / fs,
        shifts_s=shifts / fs,
        fs=float(fs),
        alpha=float(alpha),
        tail=tail,
        null_minp=null_minp,
        z=z,
        q_pair=q_pair,
        p_shift=p_shift,
        test=test,
    )


# --------------------------------------------------------------------------------------------------
# Clocks
# --------------------------------------------------------------------------------------------------


def traces_on_imaging_clock(
    scores: np.ndarray,
    t_cam: np.ndarray,
    t_img: np.ndarray,
    lag_s: float = 0.0,
    min_overlap_s: float = 10.0,
) -> tuple[np.ndarray, ClockAlignment]:
    """Move per-camera-frame traces onto the imaging frames that lie inside the camera's span.

    Each imaging frame gets the mean of the camera frames in its bin (the camera usually runs faster
    than the microscope); a bin that holds no camera frame (a dropped frame) is interpolated linearly
    from its neighbours.

    Args:
        scores: ``(T_cam, K)`` per-frame traces.
        t_cam: ``(T_cam,)`` camera frame times.
        t_img: ``(T_img,)`` imaging frame times in camera-clock seconds.
        lag_s: lag added to the imaging clock before matching (see :func:`mouseemo.data.clock_alignment.align_clocks`).
        min_overlap_s: shortest acceptable overlap.

    Returns:
        ``(traces (K, T_overlap), alignment)``; ``alignment.neural_idx`` are the imaging frames used.

    Raises:
        DataError: the clocks overlap for less than ``min_overlap_s`` or shapes do not match.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] != len(t_cam):
        raise DataError(f"{scores.shape[0] if scores.ndim else 0} score rows for {len(t_cam)} camera frames")
    align = align_clocks(t_cam, t_img, lag_s=lag_s, min_overlap_s=min_overlap_s)
    t_dst = align.t_neural
    if len(t_dst) < 2:
        raise DataError("fewer than 2 imaging frames overlap the face video")
    mean = resample(scores, t_cam, t_dst, method="mean", axis=0)
    lin = resample(scores, t_cam, t_dst, method="linear", axis=0)
    out = np.where(np.isfinite(mean), mean, lin)
    _check_finite(out.T, "face traces on the imaging clock")
    return out.T, align
