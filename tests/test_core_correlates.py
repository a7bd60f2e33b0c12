"""Statistics of the correlates with exact values: Benjamini-Hochberg q-values, row standardising and
the circular cross-correlation (against brute-force Pearson correlations at every shift)."""

import numpy as np
import pytest

from mouseemo.analysis.correlates_stats import benjamini_hochberg, circular_crosscorrelation, standardise_rows
from mouseemo.errors import DataError


def reference_bh(p):
    p = np.asarray(p, dtype=float)
    m = len(p)
    return np.array(
        [min(1.0, min(p[j] * m / (np.sum(p <= p[j])) for j in range(m) if p[j] >= p[i])) for i in range(m)]
    )


def test_benjamini_hochberg_exact():
    p = np.array([0.01, 0.04, 0.03, 0.5])
    np.testing.assert_allclose(benjamini_hochberg(p), [0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5], rtol=1e-15)
    rng = np.random.default_rng(0)
    for _ in range(5):
        p = rng.random(17) ** 3
        np.testing.assert_allclose(benjamini_hochberg(p), reference_bh(p), rtol=1e-14)
    # capped at 1; ties; shapes kept; NaN is no test
    np.testing.assert_array_equal(benjamini_hochberg(np.array([0.9, 0.9, 1.0])), [1.0, 1.0, 1.0])
    q = benjamini_hochberg(np.array([[0.02, np.nan], [0.01, 0.03]]))
    assert q.shape == (2, 2) and np.isnan(q[0, 1])
    np.testing.assert_allclose(q[[0, 1, 1], [0, 0, 1]], [0.03, 0.03, 0.03], rtol=1e-15)
    np.testing.assert_allclose(
        benjamini_hochberg(np.array([0.2, np.inf, 0.1])), [0.2, np.nan, 0.2], rtol=1e-15
    )
    assert np.isnan(benjamini_hochberg(np.array([np.nan]))).all()
    assert benjamini_hochberg(np.zeros(0)).shape == (0,)
    np.testing.assert_array_equal(benjamini_hochberg(np.array([0.0, 1.0])), [0.0, 1.0])
    # integers are p-values too
    np.testing.assert_array_equal(benjamini_hochberg([0, 1]), [0.0, 1.0])
    for bad in ([-0.1, 0.5], [0.5, 1.5]):
        with pytest.raises(ValueError, match=r"^p-values must lie in \[0, 1\]$"):
            benjamini_hochberg(np.array(bad))


def test_benjamini_hochberg_stable_order_of_ties():
    p = np.array([0.04, 0.01, 0.04, 0.02])
    np.testing.assert_allclose(benjamini_hochberg(p), reference_bh(p), rtol=1e-15)


def test_standardise_rows():
    x = np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0], [0.0, 0.0, 4.0]])
    out, flat = standardise_rows(x)
    assert flat.tolist() == [False, True, False]
    np.testing.assert_allclose(out[0], np.array([-1.0, 0.0, 1.0]) / np.sqrt(2), rtol=1e-15)
    np.testing.assert_array_equal(out[1], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(np.linalg.norm(out[2]), 1.0, rtol=1e-15)
    assert out.dtype == np.float64
    # integer rows are standardised in float64; a row constant up to rounding is flat
    ints, _ = standardise_rows(np.array([[0, 0, 200]], dtype=np.uint8))
    np.testing.assert_allclose(ints[0], np.array([-1.0, -1.0, 2.0]) / np.sqrt(6), rtol=1e-15)
    big = np.full((1, 4), 1e6) + np.array([0, 1e-11, 0, 0])
    assert standardise_rows(big)[1].tolist() == [True]
    tiny = np.array([[0.0, 1e-9, 0.0, 0.0]])
    assert standardise_rows(tiny)[1].tolist() == [False]
    small = np.array([[0.0, 1e-13, 0.0, 0.0]])
    assert standardise_rows(small)[1].tolist() == [True]
    # batched leading axes
    out3, flat3 = standardise_rows(np.stack([x, x]))
    assert out3.shape == (2, 3, 3) and flat3.shape == (2, 3)
    np.testing.assert_array_equal(out3[1], out)
    zeros, zflat = standardise_rows(np.zeros((1, 3)))
    assert zflat.tolist() == [True] and not zeros.any()


def test_circular_crosscorrelation_against_pearson():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 20))
    y = rng.normal(size=(2, 20))
    x[2] = 4.0  # a constant neuron correlates 0
    out = circular_crosscorrelation(x, y, workers=1)
    assert out.shape == (3, 2, 20) and out.dtype == np.float64
    for n in range(2):
        for k in range(2):
            for s in range(20):
                expected = np.corrcoef(y[k], np.roll(x[n], -s))[0, 1]
                assert out[n, k, s] == pytest.approx(expected, abs=1e-12)
    np.testing.assert_array_equal(np.round(out[2], 12), 0.0)
    np.testing.assert_allclose(circular_crosscorrelation(x.astype(np.float32), y), out, atol=1e-6)
    np.testing.assert_allclose(circular_crosscorrelation(x, y), out, atol=1e-12)
    odd = circular_crosscorrelation(x[:, :19], y[:, :19])
    assert odd.shape == (3, 2, 19)
    assert odd[0, 0, 5] == pytest.approx(np.corrcoef(y[0, :19], np.roll(x[0, :19], -5))[0, 1], abs=1e-12)


@pytest.mark.parametrize(
    "x, y",
    [
        (np.zeros((2, 5)), np.zeros((1, 6))),
        (np.zeros(5), np.zeros((1, 5))),
        (np.zeros((2, 5)), np.zeros((1, 1, 5))),
    ],
)
def test_circular_crosscorrelation_shapes(x, y):
    with pytest.raises(DataError, match=r"^need activity \(N, T\) and traces \(K, T\) on one clock; got"):
        circular_crosscorrelation(x, y)


def test_standardise_rows_thresholds():
    """Flat means a centred norm of at most 1e-12 (flat rows are all zeros); other rows get unit norm."""
    out, flat = standardise_rows(np.array([[0.0, 1e-13, 0.0, 0.0]]))
    assert flat.tolist() == [True] and not out.any()
    just_above = np.array([[0.0, 1.6e-12, 0.0, 0.0]])
    assert standardise_rows(just_above)[1].tolist() == [False]
    weak = np.array([[0.0, 0.0, 0.3]])
    out, flat = standardise_rows(weak)
    assert flat.tolist() == [False]
    np.testing.assert_allclose(np.linalg.norm(out), 1.0, rtol=1e-15)


def test_benjamini_hochberg_computes_in_float64():
    """float32 p-values are widened before p * m / rank (float32 products would round differently)."""
    p32 = np.array([0.013, 0.041, 0.0277, 0.5, 0.31, 0.0099, 0.07], dtype=np.float32)
    np.testing.assert_array_equal(benjamini_hochberg(p32), benjamini_hochberg(p32.astype(np.float64)))
    # ties share one q-value whatever their order; the largest p-value bounds all q-values
    np.testing.assert_array_equal(benjamini_hochberg(np.array([0.3, 0.3, 0.3])), [0.3, 0.3, 0.3])
    assert benjamini_hochberg(np.array([0.99, 0.98, 0.97])).max() <= 0.99


def test_standardise_rows_of_large_rows_and_no_rows():
    """The flat test is on the centred norm alone: large offsets and large spreads do not matter."""
    offset = np.full((1, 4), 1e6) + np.array([0.0, 2.5e-10, 0.0, 0.0])  # two ulps of 1e6
    assert standardise_rows(offset)[1].tolist() == [False]  # a centred norm of 2e-10
    spread = np.array([[0.0, 1e9, 0.0, 2e9]])
    out, flat = standardise_rows(spread)
    assert flat.tolist() == [False]
    np.testing.assert_allclose(np.linalg.norm(out), 1.0, rtol=1e-15)
    out, flat = standardise_rows(np.zeros((0, 5)))
    assert out.shape == (0, 5) and flat.shape == (0,)


def test_standardise_rows_widens_float32_first():
    """float32 rows are centred and scaled in float64 (the result's dtype and its last bits)."""
    x32 = np.array([[1.1, 2.7, 4.3, 0.2], [3.0, 3.0, 3.0, 3.0]], dtype=np.float32)
    out, flat = standardise_rows(x32)
    assert out.dtype == np.float64 and flat.tolist() == [False, True]
    np.testing.assert_array_equal(out, standardise_rows(x32.astype(np.float64))[0])


def test_activity_skewness_is_the_biased_sample_skewness():
    from scipy.stats import skew

    from mouseemo.analysis.correlates_stats import activity_skewness

    rng = np.random.default_rng(3)
    x = np.stack([rng.exponential(size=50), rng.normal(size=50), -rng.exponential(size=50) * 3.0 + 7.0])
    np.testing.assert_allclose(activity_skewness(x), skew(x, axis=1, bias=True), rtol=1e-12)
    # constant rows are 0; integer rows are read as float64
    assert activity_skewness(np.full((1, 6), 4.0)).tolist() == [0.0]
    ints = np.array([[0, 0, 0, 200]], dtype=np.uint8)
    np.testing.assert_allclose(activity_skewness(ints), skew(ints.astype(float), axis=1), rtol=1e-12)


def _reflect_filter(row, size, fn):
    """scipy.ndimage's 1-D filter of ``size`` (window ``i - size // 2`` on), mode "reflect", by hand."""
    n = len(row)
    out = np.empty(n)
    for i in range(n):
        idx = np.arange(i - size // 2, i - size // 2 + size) % (2 * n)
        idx = np.where(idx >= n, 2 * n - 1 - idx, idx)
        out[i] = fn(row[idx])
    return out


@pytest.mark.parametrize(
    "fs, window_s, smooth_s, length",
    [(10.0, 3.0, 0.5, 80), (4.0, 2.6, 2.0, 40), (10.0, 30.0, 0.4, 25), (10.0, 0.04, 0.02, 30)],
)
def test_remove_slow_baseline_is_a_smoothed_maximin(fs, window_s, smooth_s, length):
    from mouseemo.analysis.correlates_stats import remove_slow_baseline

    rng = np.random.default_rng(4)
    x = np.cumsum(rng.normal(size=(2, length)), axis=1) + (rng.random((2, length)) > 0.9) * 5.0
    win = max(1, min(round(window_s * fs), length))
    out = remove_slow_baseline(x, fs, window_s, smooth_s)
    assert out.shape == x.shape and out.dtype == np.float64
    for row, got in zip(x, out, strict=True):
        smooth = _reflect_filter(row, max(1, round(smooth_s * fs)), np.mean)
        base = _reflect_filter(_reflect_filter(smooth, win, np.min), win, np.max)
        np.testing.assert_allclose(got, row - base, rtol=1e-12, atol=1e-12)
    # the default smoothing is 2 s; integer input is read as float64
    ints = (x * 10).astype(np.int16)
    np.testing.assert_array_equal(remove_slow_baseline(ints, fs, window_s), remove_slow_baseline(
        ints.astype(np.float64), fs, window_s, 2.0))  # fmt: skip


def _reference_pooled(z, pools, shape, live, strata, min_pairs, in_pool):
    n, k_traces = z.shape
    p = np.ones(z.shape)
    alive = [i for i in range(n) if live[i]]
    if not alive:
        return p, 0
    groups = max(1, min(strata, len(alive) // max(min_pairs, 1)))
    shp = np.broadcast_to(shape.reshape(n, -1), z.shape)
    smallest = pools.shape[2] * len(alive)
    for k in range(k_traces):
        order = sorted(alive, key=lambda i: (shp[i, k], i))
        base, extra = divmod(len(order), groups)
        start = 0
        for g in range(groups):
            grp = order[start : start + base + (g < extra)]
            start += base + (g < extra)
            members = [i for i in grp if in_pool[i, k]] or grp
            vals = np.concatenate([pools[i, k] for i in members])
            for i in grp:
                # the threshold in the pool's dtype (float32 pools: a z equal to a null value is a tie)
                thr = np.asarray(z[i, k] - 1e-9).astype(vals.dtype)
                p[i, k] = (np.sum(vals >= thr) + 1.0) / (len(vals) + 1.0)
            smallest = min(smallest, len(vals))
    return p, smallest


def test_pooled_pvalues_against_the_rule():
    from mouseemo.analysis.correlates_stats import pooled_pvalues

    rng = np.random.default_rng(5)
    n, k, shifts = 9, 2, 6
    z = rng.normal(size=(n, k)) * 1.5
    pools = rng.normal(size=(n, k, shifts))
    pools[0, 0, 0] = z[0, 0]  # a tie counts as at or above
    pools[2, 1, 3] = z[2, 1] - 5e-10  # within the tolerance of 1e-9
    shape = np.array([0.3, 0.1, 0.3, 2.0, -1.0, 0.5, 0.3, 0.9, 0.0])  # ties keep the neuron order
    live = np.ones(n, bool)
    live[[4, 7]] = False
    in_pool = rng.random((n, k)) > 0.3
    in_pool[:, 1] = False  # no pair of trace 1 is in its pool: each group pools all its pairs
    for strata, min_pairs in [(3, 2), (1, 1), (5, 0), (4, 3)]:
        for sh, ip in [(shape, in_pool), (np.stack([shape, -shape], axis=1), None)]:
            ip_ref = np.ones((n, k), bool) if ip is None else ip
            got, smallest = pooled_pvalues(z, pools, sh, live, strata, min_pairs, ip)
            ref, ref_smallest = _reference_pooled(z, pools, sh, live, strata, min_pairs, ip_ref)
            np.testing.assert_allclose(got, ref, rtol=1e-15)
            assert smallest == ref_smallest
            assert (got[~live] == 1.0).all()
    p, smallest = pooled_pvalues(z, pools, shape, np.zeros(n, bool), 2, 2)
    assert (p == 1.0).all() and p.shape == (n, k) and smallest == 0


def test_correlate_neurons_and_the_clock_refuse_bad_input_with_one_clear_line():
    from mouseemo.analysis.correlates import correlate_neurons, traces_on_imaging_clock
    from mouseemo.errors import ConfigError

    act = np.random.default_rng(6).normal(size=(3, 40))
    with pytest.raises(DataError, match=r"^no face traces to correlate with$"):
        correlate_neurons(act, np.zeros((0, 40)), 10.0)
    for fs in (0.0, -1.0, float("nan")):
        with pytest.raises(ConfigError, match=r"^imaging frame rate must be positive; got "):
            correlate_neurons(act, act[:1], fs)
    with pytest.raises(ConfigError, match=r"^lags_s is empty; use \(0,\) for no lag sweep$"):
        correlate_neurons(act, act[:1], 10.0, lags_s=())
    with pytest.raises(ConfigError, match=r"^strata must be >= 1; got 0$"):
        correlate_neurons(act, act[:1], 10.0, strata=0)
    t_cam = np.arange(50) / 20.0
    with pytest.raises(DataError, match=r"^4 score rows for 50 camera frames$"):
        traces_on_imaging_clock(np.zeros(4), t_cam, t_cam[::2])
    with pytest.raises(DataError, match=r"^0 score rows for 50 camera frames$"):
        traces_on_imaging_clock(np.float64(1.0), t_cam, t_cam[::2])
    scores = np.zeros((50, 2))
    scores[:, 1] = np.nan
    with pytest.raises(
        DataError, match=r"^face traces on the imaging clock contain NaN or inf \(25 values; first: row 1"
    ):
        traces_on_imaging_clock(scores, t_cam, t_cam[::2], min_overlap_s=1.0)


def test_correlate_neurons_warns_at_the_callers_line_and_takes_one_stratum():
    import warnings

    from mouseemo.analysis.correlates import correlate_neurons

    act = np.random.default_rng(7).normal(size=(4, 40))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        result = correlate_neurons(act, act[:1], 10.0, num_shifts=100, strata=1)
    shifts = [w for w in rec if "circular shifts fit in 4.0 s of data" in str(w.message)]
    assert len(shifts) == 1 and shifts[0].filename == __file__
    assert result is not None


def test_skewness_of_float32_rows_and_pooled_pvalues_of_one_live_neuron_and_float32_pools():
    from scipy.stats import skew

    from mouseemo.analysis.correlates_stats import activity_skewness, pooled_pvalues

    x32 = np.random.default_rng(8).exponential(size=(2, 30)).astype(np.float32) * 1000.0 + 3000.0
    np.testing.assert_array_equal(activity_skewness(x32), activity_skewness(x32.astype(np.float64)))
    np.testing.assert_allclose(activity_skewness(x32), skew(x32.astype(np.float64), axis=1), rtol=1e-10)
    # one live neuron still gets its p-values
    z = np.array([[0.5], [9.0]])
    pools = np.array([[[0.1, 0.7, 0.4]], [[5.0, 5.0, 5.0]]])
    p, smallest = pooled_pvalues(z, pools, np.zeros(2), np.array([True, False]), 2, 1)
    np.testing.assert_allclose(p, [[2.0 / 4.0], [1.0]])
    assert smallest == 3
    # float32 pools: z is compared in float64 less 1e-9, then rounded to the pool's dtype
    pool32 = np.array([[[1.0, 0.5, 0.25]]], dtype=np.float32)
    p, _ = pooled_pvalues(np.array([[1.0 + 2e-9]]), pool32, np.zeros(1), np.ones(1, bool), 1, 1)
    np.testing.assert_allclose(p, [[2.0 / 4.0]])  # 1 + 1e-9 rounds to 1.0 in float32: a tie
