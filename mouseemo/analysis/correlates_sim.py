"""Untuned neural populations against realistic face traces: what the correlates null must stay
calibrated on (:func:`calibration_table`, used by ``benchmarks/correlates.py --calibration`` and the
tests).

Every recording has ``K`` face traces made of emotion epochs (bouts of a few seconds, one long block
like a malaise), each convolved with a slow decay and carrying a little smoothed noise, so they are
autocorrelated and sparse like unmixed expression intensities. Its neurons are untuned ones of one
population plus, optionally, tuned neurons whose rate follows one trace (they share the recording, so
they enter whatever null is pooled over neurons). Populations (:data:`POPULATIONS`):

* ``gaussian``: smoothed Gaussian noise, the exchangeable case;
* ``sparse``: rare single events (a few per minute) through a calcium kernel, plus noise;
* ``bursty``: rare bursts of many spikes (clustered events), a slow calcium kernel, plus noise;
* ``mixed_rates``: log-normal rates from rare to busy, half of them bursty;
* ``drift``: calcium of moderate rate riding on a slow drift of the baseline;
* ``short_dff``: a 2-minute session whose raw fluorescence (drifting baseline, bursty events) goes
  through mouseemo's dF/F, whose window then covers the whole recording.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import lfilter
from scipy.stats import beta, binom

from mouseemo.data.imaging import dff
from mouseemo.errors import ConfigError

__all__ = ["POPULATIONS", "calibration_recording", "calibration_table", "face_epochs"]

POPULATIONS = ("gaussian", "sparse", "bursty", "mixed_rates", "drift", "short_dff")

#: Length of the ``short_dff`` sessions in minutes (shorter than dF/F's window).
SHORT_MINUTES = 2.0


def _decay(x: np.ndarray, fs: float, tau_s: float | np.ndarray) -> np.ndarray:
    """Each row through an exponential kernel of ``tau_s`` seconds (one tau per row when an array)."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    taus = np.broadcast_to(np.asarray(tau_s, dtype=np.float64), (x.shape[0],))
    out = np.empty_like(x)
    for i, (row, t) in enumerate(zip(x, taus)):
        out[i] = lfilter([1.0], [1.0, -np.exp(-1.0 / (t * fs))], np.concatenate([row, row]))[len(row) :]
    return out


def face_epochs(rng: np.random.Generator, num_t: int, fs: float, k: int = 6) -> np.ndarray:
    """``(k, T)`` non-negative face traces: bouts of 2-10 s (a few per minute), one 30-60 s block in
    the first trace, a 1.5 s decay and a little smoothed noise."""
    minutes = num_t / fs / 60.0
    traces = np.zeros((k, num_t))
    for j in range(k):
        for _ in range(max(2, int(rng.poisson(1.5 * minutes)))):
            dur = int(rng.uniform(2.0, 10.0) * fs)
            on = int(rng.integers(0, max(1, num_t - dur)))
            traces[j, on : on + dur] += rng.uniform(0.5, 1.0)
    block = int(min(rng.uniform(30.0, 60.0) * fs, num_t // 4))
    on = int(rng.integers(0, num_t - block))
    traces[0, on : on + block] += rng.uniform(0.3, 0.6)
    traces = _decay(traces, fs, 1.5) + 0.05 * gaussian_filter1d(
        rng.standard_normal((k, num_t)), 0.5 * fs, axis=1
    )
    return np.clip(traces, 0.0, None)


def _calcium(rng, rate_hz, fs, tau_s, noise=0.3):
    """Poisson spikes of the given rates ``(n, T)`` through a calcium kernel, plus white noise."""
    spikes = rng.poisson(np.clip(rate_hz, 0.0, None) / fs)
    return _decay(spikes, fs, tau_s) + noise * rng.standard_normal(spikes.shape)


def _bursts(rng, n, num_t, fs, burst_hz, spikes_per_burst=10.0, burst_s=1.0):
    """Rates ``(n, T)`` of neurons that fire in rare bursts of ``spikes_per_burst`` spikes."""
    onsets = rng.random((n, num_t)) < np.asarray(burst_hz).reshape(-1, 1) / fs
    width = max(1, int(burst_s * fs))
    return lfilter(np.ones(width), [1.0], onsets.astype(np.float64), axis=1) * spikes_per_burst / burst_s


def _untuned(population: str, rng: np.random.Generator, n: int, num_t: int, fs: float) -> np.ndarray:
    if population == "gaussian":
        return gaussian_filter1d(rng.standard_normal((n, num_t)), 3.0, axis=1, mode="wrap")
    if population == "sparse":
        return _calcium(rng, rng.uniform(0.01, 0.1, (n, 1)) * np.ones((1, num_t)), fs, 0.7, noise=0.1)
    if population == "bursty":
        rate = _bursts(rng, n, num_t, fs, rng.uniform(0.004, 0.03, n))
        return _calcium(rng, rate, fs, rng.uniform(0.7, 1.5, n), noise=0.1)
    if population == "mixed_rates":
        rate = np.exp(rng.normal(np.log(0.3), 1.2, (n, 1))) * np.ones((1, num_t))
        bursty = rng.random(n) < 0.5
        rate[bursty] = _bursts(rng, int(bursty.sum()), num_t, fs, rng.uniform(0.01, 0.05, int(bursty.sum())))
        return _calcium(rng, rate, fs, rng.uniform(0.5, 1.5, n))
    if population == "drift":
        walk = gaussian_filter1d(np.cumsum(rng.standard_normal((n, num_t)), axis=1), 20.0 * fs, axis=1)
        walk /= walk.std(axis=1, keepdims=True) + 1e-12
        return _calcium(rng, np.full((n, num_t), 0.3), fs, 0.8) + rng.uniform(0.5, 2.0, (n, 1)) * walk
    if population == "short_dff":
        return _bursts(rng, n, num_t, fs, rng.uniform(0.01, 0.05, n))
    raise ConfigError(f"`population` must be one of {list(POPULATIONS)}; got {population!r}")


def calibration_recording(
    population: str,
    seed: int,
    minutes: float = 4.0,
    fs: float = 15.0,
    num_untuned: int = 120,
    num_tuned: int = 30,
    num_background: int = 60,
    k: int = 6,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One recording: ``(activity (N, T), traces (k, T), tuned (N,))``, ``tuned[i]`` the trace neuron
    ``i`` follows (``-1``: untuned, one of ``population``; ``-2``: the untuned busy background). ``short_dff`` lasts :data:`SHORT_MINUTES`
    whatever ``minutes`` says, and all its neurons go through :func:`mouseemo.data.imaging.dff`."""
    if population not in POPULATIONS:
        raise ConfigError(f"`population` must be one of {list(POPULATIONS)}; got {population!r}")
    rng = np.random.default_rng(seed)
    if population == "short_dff":
        minutes = SHORT_MINUTES
    num_t = int(round(minutes * 60.0 * fs))
    traces = face_epochs(rng, num_t, fs, k)
    # tuned neurons, then a background of busy untuned ones (not scored), then the population
    tuned = np.concatenate([np.arange(num_tuned) % k, np.full(num_background, -2), np.full(num_untuned, -1)])
    rate = np.exp(rng.normal(np.log(0.5), 0.6, (num_tuned + num_background, 1))) * np.ones((1, num_t))
    rate[num_tuned:] *= 4.0
    for i in range(num_tuned):
        rate[i] += rng.uniform(2.0, 6.0) * traces[tuned[i]] / max(traces[tuned[i]].max(), 1e-12)
    untuned = _untuned(population, rng, num_untuned, num_t, fs)
    if population != "short_dff":
        return np.concatenate([_calcium(rng, rate, fs, 0.7), untuned]), traces, tuned
    # raw fluorescence: a drifting baseline times (1 + calcium), shot noise; then the project's dF/F
    rates = np.concatenate([rate, untuned])
    calcium = _decay(rng.poisson(rates / fs), fs, rng.uniform(0.7, 1.5, len(rates)))
    drift = gaussian_filter1d(rng.standard_normal((len(rates), num_t)), 30.0 * fs, axis=1)
    base = 100.0 * (1.0 + 0.2 * drift / (drift.std(axis=1, keepdims=True) + 1e-12))
    F = np.clip(base, 20.0, None) * (1.0 + 0.3 * calcium)
    F = F + np.sqrt(F) * rng.standard_normal(F.shape)
    return dff(F, fs).astype(np.float64), traces, tuned


def _limit(count_n: int, alpha: float) -> float:
    """The largest rate of ``p < alpha`` that a calibrated null shows in ``count_n`` tests, 95 % of the
    time (upper 95 % quantile of Binomial(n, alpha) over n)."""
    return float(binom.ppf(0.95, count_n, alpha) / max(count_n, 1))


def _upper(count: int, n: int) -> float:
    """Clopper-Pearson upper 95 % bound of a rate of ``count`` in ``n``."""
    return 1.0 if count >= n else float(beta.ppf(0.975, count + 1, n - count))


def calibration_table(
    pvalues_of,
    populations=POPULATIONS,
    seeds=(0, 1),
    alphas=(0.01, 0.05),
    report_alphas=(0.001,),
    **recording,
) -> list[dict]:
    """Rate of ``p < alpha`` among the untuned pairs of each population, with its bounds.

    Args:
        pvalues_of: ``(activity, traces) -> (N, K)`` pair p-values (e.g. a correlates test's ``p_pair``).
        populations, seeds: the recordings (one per population and seed).
        alphas: the levels checked.
        report_alphas: levels whose rate is reported but not judged (the deep tail, where a few
            thousand pairs hold only a handful of hits).
        **recording: passed on to :func:`calibration_recording` (``minutes``, ``num_untuned``, ...).

    Returns:
        One dict per population: ``population, pairs`` and per alpha ``rate@a`` (the observed rate),
        ``se@a`` (its standard error from the spread between recordings: pairs of one recording share
        its face traces, so they are not independent draws; ``nan`` for one recording), ``upper@a``
        (its Clopper-Pearson upper 95 % bound), ``limit@a`` (the most a calibrated null shows 95 % of
        the time), ``pass`` (every rate of ``alphas`` at most its limit) and ``pass_se`` (every rate of
        ``alphas`` at most ``alpha + 1.645 se``: calibration not rejected at 5 % with the error the
        recordings show; ``nan`` errors never pass).
    """
    rows = []
    for population in populations:
        ps = []
        for seed in seeds:
            act, traces, tuned = calibration_recording(population, seed, **recording)
            ps.append(np.asarray(pvalues_of(act, traces))[tuned == -1].ravel())
        p = np.concatenate(ps)
        row = {"population": population, "pairs": len(p), "pass": True, "pass_se": True}
        for a in (*alphas, *report_alphas):
            count = int((p < a).sum())
            per_recording = np.array([np.mean(q < a) for q in ps])
            row[f"rate@{a:g}"] = count / len(p)
            row[f"se@{a:g}"] = (
                float(per_recording.std(ddof=1) / np.sqrt(len(ps))) if len(ps) > 1 else float("nan")
            )
            row[f"upper@{a:g}"] = _upper(count, len(p))
            row[f"limit@{a:g}"] = _limit(len(p), a)
            if a in alphas:
                row["pass"] &= row[f"rate@{a:g}"] <= row[f"limit@{a:g}"]
                row["pass_se"] &= bool(row[f"rate@{a:g}"] <= a + 1.645 * row[f"se@{a:g}"])
        rows.append(row)
    return rows
