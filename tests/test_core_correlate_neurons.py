"""`correlate_neurons` against a direct reference: every field of its result recomputed with shifted
copies and dot products (no FFT, no pooling code of the product), on small recordings that exercise
the lag sweep, both tails, both tests, the slow baseline, the strata of the pooled null, chunking,
drawn shifts, constant neurons and constant traces."""

import warnings

import numpy as np
import pytest
from scipy.ndimage import maximum_filter1d, minimum_filter1d, uniform_filter1d

from mouseemo.analysis.correlates import correlate_neurons
from tests.test_core_correlates import _reference_pooled, reference_bh

FS = 2.0  # 2 Hz: 600 samples cover 300 s, longer than the 120 s baseline window


def _baseline_off(x, fs):
    """Each row less its running mean (2 s) followed by a running minimum and maximum over 120 s."""
    win = min(int(round(120.0 * fs)), x.shape[1])
    smooth = uniform_filter1d(x, max(1, int(round(2.0 * fs))), axis=1, mode="reflect")
    return x - maximum_filter1d(minimum_filter1d(smooth, win, axis=1), win, axis=1)


def _corr_at_shift(x, y, s):
    """corr(y[k, t], x[n, t + s]) for every (n, k), by rolling and dot products."""
    xr = np.roll(x, -s, axis=1)
    xc = xr - xr.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    nx, ny = np.linalg.norm(xc, axis=1), np.linalg.norm(yc, axis=1)
    out = (xc @ yc.T) / np.outer(np.where(nx > 1e-12, nx, np.inf), np.where(ny > 1e-12, ny, np.inf))
    return out


def reference(activity, traces, fs, lags_s, shifts, alpha, tail, test, strata=10):
    """What `correlate_neurons` returns, from its definition, for the given shifts (in samples)."""
    x = _baseline_off(np.asarray(activity, float), fs)
    y = np.asarray(traces, float)
    n, k = x.shape[0], y.shape[0]
    t = x.shape[1]
    lags = np.unique(np.round(np.asarray(lags_s) * fs).astype(int))
    cc = {
        s: _corr_at_shift(x, y, s % t)
        for s in set(np.concatenate([lags, (shifts[:, None] + lags).ravel()]) % t)
    }

    def score(c):
        return np.abs(c) if tail == "two-sided" else c

    obs_all = np.stack([score(cc[lag % t]) for lag in lags], axis=2)  # (n, k, L)
    j = obs_all.argmax(axis=2)
    r = np.stack([cc[lag % t] for lag in lags], axis=2)[np.arange(n)[:, None], np.arange(k)[None], j]
    obs = obs_all.max(axis=2)
    null = np.stack([np.max([score(cc[(s + lag) % t]) for lag in lags], axis=0) for s in shifts], axis=2)
    mu, sd = null.mean(axis=2), null.std(axis=2)
    sd = np.where(sd > 0, sd, 1.0)
    z = (obs - mu) / sd
    num_s = len(shifts)
    p_shift = (1.0 + (null >= obs[..., None]).sum(axis=2)) / (num_s + 1.0)
    # min-p over traces at every alignment (the true one first), each among all alignments of its pair
    align = np.concatenate([obs[..., None], null], axis=2)
    p_all = np.empty(align.shape)
    for i in range(n):
        for kk in range(k):
            ordered = np.sort(align[i, kk])
            p_all[i, kk] = (num_s + 1 - np.searchsorted(ordered, align[i, kk], side="left")) / (num_s + 1.0)
    minp = p_all.min(axis=1)
    p_neuron = (minp <= minp[:, :1] + 1e-12).sum(axis=1) / (num_s + 1.0)
    flat_x = np.linalg.norm(x - x.mean(axis=1, keepdims=True), axis=1) <= 1e-12
    flat_y = np.linalg.norm(y - y.mean(axis=1, keepdims=True), axis=1) <= 1e-12
    if test == "pairs":
        pool_at = np.unique(np.linspace(0, num_s - 1, min(num_s, 4000)).round().astype(int))
        pools = (null[:, :, pool_at] - mu[..., None]) / sd[..., None]
        c = x - x.mean(axis=1, keepdims=True)
        s2 = np.sqrt((c**2).mean(axis=1))
        skew = (c**3).mean(axis=1) / np.where(s2 > 0, s2, 1.0) ** 3
        p_pair, _ = _reference_pooled(z, pools.astype(np.float32), skew, ~flat_x, strata, 20, p_shift >= 0.05)
        p_pair[:, flat_y] = 1.0
    else:
        p_pair = p_shift.copy()
    q_pair = reference_bh(p_pair.ravel()).reshape(n, k)
    best = np.array([min(range(k), key=lambda kk: (p_pair[i, kk], -z[i, kk])) for i in range(n)])
    stat = score(r)[np.arange(n), best]
    if test == "pairs":
        p, q = p_pair[np.arange(n), best], q_pair[np.arange(n), best]
    else:
        p = np.where(flat_x, 1.0, p_neuron)
        q = reference_bh(p)
    significant = (q < alpha) & ((stat > 0) | (tail == "two-sided"))
    return dict(
        r=r,
        lag_s=lags[j] / fs,
        z=z,
        p_shift=p_shift,
        p_pair=p_pair,
        q_pair=q_pair,
        best=best,
        stat=stat,
        p=p,
        q=q,
        significant=significant,
        null_minp=minp[:, 1:],
        lags_s=lags / fs,
    )


def recording(seed, n=64, k=3, t=600):
    """Neurons of varied shapes (Gaussian, sparse events, drift), some following a trace at a lag,
    one suppressed by a trace, one constant; traces of bouts, the last one constant when asked."""
    rng = np.random.default_rng(seed)
    y = uniform_filter1d((rng.random((k, t)) < 0.03).astype(float), 8, axis=1, mode="wrap") * 4.0
    y += 0.05 * rng.standard_normal((k, t))
    x = uniform_filter1d(rng.standard_normal((n, t)), 3, axis=1, mode="wrap")
    x[: n // 3] = rng.exponential(1.0, (n // 3, t)) ** 3  # skewed, sparse-like rows
    x[n // 3 : n // 2] += np.linspace(0, 4, t) * rng.uniform(0.5, 2, (n // 2 - n // 3, 1))  # drift
    for i, kk in zip(range(n // 2, n // 2 + 9), [0, 1, 2] * 3):
        x[i] += 1.5 * np.roll(y[kk % k], 1 + i % 2)  # activity follows the face by 0.5 s or 1 s
    x[n - 2] -= 2.0 * y[1]  # suppressed
    x[n - 1] = 3.0  # constant
    return x, y


CASES = [
    # (seed, lags_s, tail, test, num_shifts, min_shift_s, max_chunk_bytes, constant trace)
    (0, (0.0, 0.5, 1.0), "greater", "pairs", None, 0.0, 256 * 2**20, False),
    (1, (0.5,), "two-sided", "pairs", 150, 0.0, 40_000, True),
    (2, (-0.5, 0.0, 1.0), "greater", "neurons", None, 0.0, 256 * 2**20, False),
    (3, (0.0, 1.0), "two-sided", "neurons", 200, 30.0, 40_000, False),
    (4, (1.0,), "greater", "pairs", None, 20.0, 256 * 2**20, True),
]


@pytest.mark.parametrize("seed,lags,tail,test,num_shifts,min_shift_s,chunk,flat_trace", CASES)
def test_correlate_neurons_equals_its_definition(
    seed, lags, tail, test, num_shifts, min_shift_s, chunk, flat_trace
):
    x, y = recording(seed)
    alpha = 0.1 if test == "pairs" else 0.5  # the exact neuron test resolves little in 5 minutes
    if flat_trace:
        y[-1] = 0.25
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = correlate_neurons(
            x,
            y,
            FS,
            lags_s=lags,
            tail=tail,
            test=test,
            num_shifts=num_shifts,
            min_shift_s=min_shift_s,
            max_chunk_bytes=chunk,
            seed=seed,
            alpha=alpha,
        )
    t = x.shape[1]
    lo = max(int(np.ceil(min_shift_s * FS)), 1)
    allowed = np.arange(lo, t - lo + 1)
    if num_shifts is None:
        shifts = allowed
    else:
        shifts = np.sort(np.random.default_rng(seed).choice(allowed, size=num_shifts, replace=False))
    np.testing.assert_array_equal(got.shifts_s * FS, shifts)
    ref = reference(x, y, FS, lags, shifts, alpha, tail, test)
    for name in ("r", "lag_s", "z", "stat", "lags_s"):
        np.testing.assert_allclose(getattr(got, name), ref[name], rtol=1e-9, atol=1e-9, err_msg=name)
    for name in ("p_shift", "p_pair", "q_pair", "p", "q", "null_minp"):
        np.testing.assert_allclose(getattr(got, name), ref[name], rtol=1e-12, atol=0, err_msg=name)
    np.testing.assert_array_equal(got.best, ref["best"])
    np.testing.assert_array_equal(got.significant, ref["significant"])
    assert got.test == test and got.tail == tail and got.alpha == alpha and got.fs == FS
    # the test has something to find and something to leave: not all-or-nothing
    assert 0 < got.significant.sum() < len(x) - 10
    if flat_trace:
        assert (got.p_pair[:, -1] == 1.0).all() and (got.r[:, -1] == 0.0).all()
    assert got.p[-1] == 1.0 and not got.significant[-1]  # the constant neuron


def test_strata_two_traces_and_an_alpha_equal_to_a_q_value():
    x, y = recording(5, k=2)
    shifts = np.arange(1, x.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        by_strata = {}
        for strata in (None, 1, 2):
            got = correlate_neurons(x, y, FS, lags_s=(0.5,), strata=strata, alpha=0.1)
            ref = reference(x, y, FS, (0.5,), shifts, 0.1, "greater", "pairs", strata=strata or 10)
            np.testing.assert_allclose(got.p_pair, ref["p_pair"], rtol=1e-12, atol=0)
            np.testing.assert_array_equal(got.best, ref["best"])
            by_strata[strata] = got
        assert not np.array_equal(by_strata[None].p_pair, by_strata[1].p_pair)  # the groups matter
        got = by_strata[None]
        assert set(got.best.tolist()) == {0, 1}  # with two traces, either can be a neuron's best
        # significance is q < alpha, strictly: an alpha equal to a neuron's q-value leaves it out
        i = int(np.flatnonzero(got.significant)[0])
        at = correlate_neurons(x, y, FS, lags_s=(0.5,), alpha=float(got.q[i]))
        assert not at.significant[i]
        assert correlate_neurons(x, y, FS, lags_s=(0.5,), alpha=float(got.q[i]) * (1 + 1e-9)).significant[i]


def test_result_tables_counts_and_preferred_emotions():
    x, y = recording(0)
    res = correlate_neurons(
        x, y, FS, names=["joy", "fear", "pain"], neuron_ids=np.arange(64) + 100, lags_s=(0.5, 1.0)
    )
    sig = res.significant
    assert 0 < sig.sum() < 64 and res.num_neurons == 64
    pref = res.preferred
    assert pref == [["joy", "fear", "pain"][b] if s else "none" for b, s in zip(res.best, sig)]
    counts = res.counts()
    assert list(counts) == ["joy", "fear", "pain", "none"]
    assert counts == {n: pref.count(n) for n in ["joy", "fear", "pain", "none"]}
    assert counts["none"] == 64 - sig.sum()
    frac = res.fractions()
    assert frac == {n: c / 64 for n, c in counts.items()}
    np.testing.assert_array_equal(res.r_best, res.r[np.arange(64), res.best])
    np.testing.assert_array_equal(res.lag_best, res.lag_s[np.arange(64), res.best])
    header, rows = res.rows()
    assert header == [
        "neuron",
        "preferred",
        "r",
        "lag_s",
        "p",
        "q",
        "significant",
        "r_joy",
        "r_fear",
        "r_pain",
        "p_joy",
        "p_fear",
        "p_pain",
        "q_joy",
        "q_fear",
        "q_pain",
    ]
    assert len(rows) == 64 and all(len(row) == len(header) for row in rows)
    i = int(np.flatnonzero(sig)[0])
    row = rows[i]
    assert row[0] == 100 + i and isinstance(row[0], int) and row[1] == pref[i] and row[6] == 1
    assert row[2] == f"{res.r_best[i]:.5f}" and row[3] == f"{res.lag_best[i]:.4f}"
    assert row[4] == f"{res.p[i]:.6g}" and row[5] == f"{res.q[i]:.6g}"
    assert row[7:10] == [f"{v:.5f}" for v in res.r[i]]
    assert row[10:13] == [f"{v:.6g}" for v in res.p_pair[i]]
    assert row[13:16] == [f"{v:.6g}" for v in res.q_pair[i]]
    assert rows[63][6] == 0 and rows[63][1] == "none"  # the constant neuron
    assert "null_minp" not in repr(res) and "names=" in repr(res)


def test_calibration_table_rates_errors_and_verdicts():
    from scipy.stats import binom

    from mouseemo.analysis.correlates_sim import calibration_table

    calls = []

    def pvalues_of(act, traces):
        # untuned rows get 0.005 (below 0.01) in the first recording and 0.2 in the second
        calls.append(act.shape)
        return np.full((act.shape[0], traces.shape[0]), 0.005 if len(calls) % 2 else 0.2)

    small = dict(minutes=1.0, num_untuned=20, num_tuned=6, num_background=4, k=2)
    (row,) = calibration_table(pvalues_of, ["gaussian"], seeds=(0, 1), **small)
    assert calls == [(30, 900), (30, 900)]
    assert row["population"] == "gaussian" and row["pairs"] == 80
    assert row["rate@0.01"] == 0.5 and row["rate@0.05"] == 0.5 and row["rate@0.001"] == 0.0
    # the per-recording rates are 1 and 0: their standard error is 0.5
    assert row["se@0.01"] == pytest.approx(0.5) and row["se@0.001"] == 0.0
    assert row["limit@0.01"] == binom.ppf(0.95, 80, 0.01) / 80 and not row["pass"]
    # within alpha + 1.645 SE: 0.5 <= 0.01 + 0.82 and 0.5 <= 0.05 + 0.82
    assert row["pass_se"]
    assert 0.5 < row["upper@0.01"] < 0.7
    # the deep tail is reported, not judged; one recording has no spread to measure
    (row,) = calibration_table(
        lambda a, t: np.full((a.shape[0], t.shape[0]), 0.0005),
        ["sparse"],
        seeds=(3,),
        alphas=(0.0001,),
        **small,
    )
    assert row["rate@0.001"] == 1.0 and row["pass"] and np.isnan(row["se@0.0001"])
    assert not row["pass_se"]  # no spread measured: no claim
    assert "rate@0.01" not in row


def _one_line(exc_type, call, message):
    with pytest.raises(exc_type) as info:
        call()
    assert str(info.value) == message


def test_every_refusal_and_warning_of_correlate_neurons_word_for_word():
    from mouseemo.errors import ConfigError, DataError

    rng = np.random.default_rng(9)
    act, tr = rng.normal(size=(3, 40)), rng.normal(size=(2, 40))
    run = correlate_neurons
    _one_line(DataError, lambda: run(act[0], tr, 10.0), "activity must be (neurons, frames); got shape (40,)")
    _one_line(
        DataError,
        lambda: run(act, tr[:, :30], 10.0),
        "traces (2, 30) and activity (3, 40) are not on one clock (need (K, T) and (N, T) with the same T)",
    )
    _one_line(ConfigError, lambda: run(act, tr, 10.0, names=["joy"]), "1 names for 2 traces")
    _one_line(DataError, lambda: run(act, tr, 10.0, neuron_ids=[4, 5]), "2 neuron ids for 3 neurons")
    _one_line(DataError, lambda: run(act[:0], tr, 10.0), "no neurons to correlate")
    bad = act.copy()
    bad[1, 5] = np.inf
    _one_line(
        DataError,
        lambda: run(bad, tr, 10.0, neuron_ids=[10, 12, 14]),
        "neural traces contain NaN or inf (1 values; first: neuron 12 at sample 5); fill or drop those samples first",
    )
    bad = tr.copy()
    bad[1, 3:5] = np.nan
    _one_line(
        DataError,
        lambda: run(act, bad, 10.0, names=["joy", "fear"]),
        "face traces contain NaN or inf (2 values; first: fear at sample 3); fill or drop those samples first",
    )
    for alpha in (0.0, 1.0):
        _one_line(
            ConfigError, lambda a=alpha: run(act, tr, 10.0, alpha=a), f"alpha must be in (0, 1); got {alpha}"
        )
    _one_line(
        ConfigError,
        lambda: run(act, tr, 10.0, num_shifts=0),
        "num_shifts must be >= 1 (or None for every shift); got 0",
    )
    _one_line(
        ConfigError,
        lambda: run(act, tr, 10.0, lags_s=[1.0]),
        "lags up to 1.0 s are too long for 4.0 s of data",
    )
    _one_line(
        DataError,
        lambda: run(act, tr, 10.0, min_shift_s=2.1),
        "4.0 s of overlapping data is too short for circular shifts of at least 2.1 s; record longer or lower min_shift_s",
    )
    # lags from a quarter of the recording on are refused, counted in whole samples (42 // 4 = 10)
    _one_line(
        ConfigError,
        lambda: run(rng.normal(size=(3, 42)), rng.normal(size=(2, 42)), 10.0, lags_s=[1.0]),
        "lags up to 1.0 s are too long for 4.2 s of data",
    )
    # the short-data warning needs the smallest p-value strictly above alpha / tests: at exactly
    # alpha / tests (1 / 32 with 31 shifts, alpha = 4 / 32 over 4 neurons) it stays silent
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run(rng.normal(size=(4, 32)), rng.normal(size=(2, 32)), 10.0, test="neurons", alpha=0.125)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the edges of what is accepted
        assert run(act, tr, 0.5).fs == 0.5  # a slow microscope
        assert run(act, tr, 10.0, lags_s=[0.9]).lags_s.tolist() == [0.9]  # 9 samples < 40 // 4
        assert len(run(act, tr, 10.0, num_shifts=1).shifts_s) == 1
        assert run(act, tr, 10.0, strata=1).p_pair.shape == (3, 2)
        assert run(act, tr, 10.0, min_shift_s=2.0).shifts_s.tolist() == [2.0]  # the one shift of 20
        one = run(act, tr[0], 10.0)  # a single trace as a 1-D array
        assert one.names == ["trace0"] and one.r.shape == (3, 1)
        np.testing.assert_allclose(
            one.r[:, 0], [np.corrcoef(tr[0], a)[0, 1] for a in _baseline_off(act, 10.0)], atol=1e-12
        )
        # the default seed draws the shifts
        drawn = run(act, tr, 10.0, num_shifts=5).shifts_s * 10.0
        np.testing.assert_array_equal(
            drawn, np.sort(np.random.default_rng(0).choice(np.arange(1, 40), 5, replace=False))
        )
    flat = tr.copy()
    flat[1] = 2.0
    with pytest.warns(UserWarning) as rec:
        run(act, flat, 10.0, names=["joy", "fear"])
    messages = [str(w.message) for w in rec]
    assert "face trace(s) ['fear'] are constant: they correlate 0" in messages
    with pytest.warns(UserWarning) as rec:
        run(act, tr, 10.0, num_shifts=100)
    assert str(rec[0].message) == (
        "only 39 circular shifts fit in 4.0 s of data; using all of them (p-values no smaller than 0.025)"
    )
    with pytest.warns(UserWarning) as rec:
        run(act, tr, 10.0, test="neurons")
    assert str(rec[0].message) == (
        "4.0 s of data is too short for the 'neurons' test: its smallest achievable p-value is 0.025, above "
        "alpha / 3 tests = 0.017, so a lone selective neuron cannot be significant; record longer or use test='pairs'"
    )
    with pytest.warns(UserWarning) as rec:
        run(act, tr, 10.0)
    assert str(rec[0].message) == (
        "4.0 s of data is too short for the 'pairs' test: its smallest achievable p-value is 0.0085, above "
        "alpha / 6 tests = 0.0083, so a lone selective neuron cannot be significant; record longer"
    )


def test_fractions_of_a_single_neuron():
    x, y = recording(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = correlate_neurons(x[60:61], y, FS)
    frac = res.fractions()
    assert sum(frac.values()) == 1.0 and max(frac.values()) == 1.0


def test_traces_on_imaging_clock_means_bins_and_interpolates_empty_ones():
    from mouseemo.analysis.correlates import traces_on_imaging_clock
    from mouseemo.data.sync import resample
    from mouseemo.errors import DataError

    t_cam = np.arange(400) / 20.0
    t_cam = np.delete(t_cam, np.arange(100, 110))  # half a second of dropped camera frames
    scores = np.stack([t_cam**2, np.sin(3 * t_cam)], axis=1).astype(np.float32)
    t_img = 0.3 + np.arange(150) / 10.0
    tr, align = traces_on_imaging_clock(scores, t_cam, t_img, lag_s=0.25, min_overlap_s=1.0)
    assert align.lag_s == 0.25 and align.t_neural[0] == pytest.approx(0.55)
    assert tr.dtype == np.float64 and tr.shape == (2, len(align.t_neural))
    s64 = scores.astype(np.float64)
    mean = resample(s64, t_cam, align.t_neural, method="mean", axis=0).T
    lin = resample(s64, t_cam, align.t_neural, method="linear", axis=0).T
    empty = ~np.isfinite(mean)
    assert empty.any() and (~empty).any()
    np.testing.assert_array_equal(tr[~empty], mean[~empty])
    np.testing.assert_array_equal(tr[empty], lin[empty])
    assert np.abs(mean[~empty] - lin[~empty]).max() > 1e-3  # a bin mean is not the interpolation
    # the default overlap needed is 10 s: 10.5 s in common pass, 9.5 s do not
    t_img = np.arange(0.0, 10.51, 0.1)
    assert traces_on_imaging_clock(scores, t_cam, t_img)[0].shape[1] == len(t_img)
    with pytest.raises(DataError, match="need at least 10.0 s in common"):
        traces_on_imaging_clock(scores, t_cam, t_img[:96])
    # two imaging frames in the overlap are enough; one is not
    assert traces_on_imaging_clock(scores, t_cam, np.array([2.0, 2.1]), min_overlap_s=0.0)[0].shape == (2, 2)
    _one_line(
        DataError,
        lambda: traces_on_imaging_clock(scores, t_cam, np.array([2.0]), min_overlap_s=0.0),
        "fewer than 2 imaging frames overlap the face video",
    )
