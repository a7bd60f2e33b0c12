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
