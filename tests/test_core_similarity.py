"""Exact values of the similarity measures: Pearson correlation (numpy, torch, 1-D, constant rows),
non-negative unmixing against scipy's NNLS, and min-max scaling with NaNs."""

import numpy as np
import pytest
import torch
from scipy.optimize import nnls

from mouseemo.ops.similarity import PearsonSimilarity, expression_intensity, minmax_scale, pearson_similarity


def test_pearson_shapes_and_dtypes():
    rng = np.random.default_rng(0)
    f, p = rng.normal(size=(4, 9)), rng.normal(size=(3, 9))
    ref = np.corrcoef(np.vstack([f, p]))[:4, 4:]
    np.testing.assert_allclose(pearson_similarity(f[0], p), ref[0], atol=1e-12)
    np.testing.assert_allclose(pearson_similarity(f, p[1]), ref[:, 1], atol=1e-12)
    one = pearson_similarity(f[0], p[1])
    assert np.shape(one) == () and one == pytest.approx(ref[0, 1], abs=1e-12)
    # integer tensors are correlated in float32; a float32 feature with float64 prototypes in float64
    ints = torch.tensor([[1, 2, 3, 5]])
    out = pearson_similarity(ints, torch.tensor([[1, 2, 3, 4]]))
    assert out.dtype == torch.float32
    assert float(out[0, 0]) == pytest.approx(np.corrcoef([1, 2, 3, 5], [1, 2, 3, 4])[0, 1], abs=1e-6)
    mixed = pearson_similarity(torch.tensor(f, dtype=torch.float32), torch.tensor(p))
    assert mixed.dtype == torch.float32
    np.testing.assert_allclose(mixed.numpy(), ref, atol=1e-6)
    # constant rows correlate 0, values are clipped to [-1, 1]
    flat = pearson_similarity(np.ones((1, 9)), p)
    np.testing.assert_array_equal(flat, np.zeros((1, 3)))
    same = pearson_similarity(torch.tensor(p, dtype=torch.float32), torch.tensor(p, dtype=torch.float32))
    assert float(same.max()) <= 1.0 and float(same.min()) >= -1.0
    tiny = pearson_similarity(np.array([[0.0, 1e-7, 0.0]]), np.array([[0.0, 1.0, 0.0]]), eps=1e-6)
    assert tiny.tolist() == [[0.0]]
    with pytest.raises(
        ValueError,
        match=r"features must be \(B, D\) or \(D,\) and prototypes \(K, D\) or \(D,\); got \(1, 1, 9\) and \(3, 9\)",
    ):
        pearson_similarity(f[None, :1], p)
    with pytest.raises(ValueError, match=r"got \(4, 9\) and \(1, 1, 9\)"):
        pearson_similarity(f, p[None, :1])
    with pytest.raises(ValueError, match="feature length 9 does not match prototype length 8"):
        pearson_similarity(f, p[:, :8])


def test_module_buffer_and_float64():
    p = np.random.default_rng(1).normal(size=(3, 6))
    m = PearsonSimilarity(p, accumulate_float64=True)
    assert m.prototypes.dtype == torch.float32 and m.accumulate_float64
    x = torch.randn(2, 6)
    torch.testing.assert_close(
        m(x), pearson_similarity(x, torch.tensor(p, dtype=torch.float32), accumulate_float64=True)
    )
    assert PearsonSimilarity(torch.tensor(p)).accumulate_float64 is False
    with pytest.raises(ValueError, match=r"prototypes must be \(K, D\); got \(6,\)"):
        PearsonSimilarity(p[0])


def test_expression_intensity_against_nnls():
    rng = np.random.default_rng(2)
    protos = rng.normal(size=(4, 12))
    coef = np.array([[0.5, 0.0, 1.2], [0.0, 0.0, 0.0], [0.3, 0.7, 0.0]])
    feats = protos[1] + (coef @ (protos[[0, 2, 3]] - protos[1])) + 0.3 * rng.normal(size=(3, 12))
    out = expression_intensity(feats, protos, neutral_index=1)
    assert out.dtype == np.float64 and out.shape == (3, 3)
    d = (protos[[0, 2, 3]] - protos[1]).T
    for i in range(3):
        np.testing.assert_allclose(out[i], nnls(d, feats[i] - protos[1])[0], atol=1e-9)
    t = expression_intensity(torch.tensor(feats, dtype=torch.float32), torch.tensor(protos), neutral_index=1)
    assert t.dtype == torch.float32
    np.testing.assert_allclose(t.numpy(), out, atol=1e-5)
    assert expression_intensity(torch.tensor(feats), protos, neutral_index=1).dtype == torch.float64
    # default neutral is row 0; only a neutral prototype gives no columns
    n = expression_intensity(feats, protos)
    d0 = (protos[1:] - protos[0]).T
    np.testing.assert_allclose(n[0], nnls(d0, feats[0] - protos[0])[0], atol=1e-9)
    assert expression_intensity(feats, protos[:1]).shape == (3, 0)
    # few sweeps: not yet converged without the polish; still the exact answer
    np.testing.assert_allclose(expression_intensity(feats, protos, 1, max_iter=1), out, atol=1e-9)


def test_expression_intensity_errors():
    p = np.eye(3)
    with pytest.raises(
        ValueError,
        match=r"features must be \(B, D\) and prototypes \(K, D\) with the same D; got \(3,\) and \(3, 3\)",
    ):
        expression_intensity(np.ones(3), p)
    with pytest.raises(ValueError, match="with the same D"):
        expression_intensity(np.ones((1, 4)), p)
    with pytest.raises(ValueError, match="with the same D"):
        expression_intensity(np.ones((1, 3)), p[0])
    for bad in (3, -1):
        with pytest.raises(ValueError, match=f"neutral_index {bad} out of range for 3 prototypes"):
            expression_intensity(np.ones((1, 3)), p, neutral_index=bad)
    with pytest.raises(ValueError, match="an expression prototype equals the neutral one"):
        expression_intensity(np.ones((1, 3)), np.stack([p[0], p[0], p[1]]))


def test_minmax_scale_numpy_and_torch():
    x = np.array([[1.0, 5.0, np.nan], [3.0, 5.0, np.nan], [2.0, 5.0, np.nan], [np.nan, 5.0, np.nan]])
    out = minmax_scale(x)
    np.testing.assert_array_equal(out[:, 0], [0.0, 1.0, 0.5, np.nan])
    np.testing.assert_array_equal(out[:, 1], [0.0, 0.0, 0.0, 0.0])
    assert np.isnan(out[:, 2]).all()
    np.testing.assert_array_equal(minmax_scale(np.array([[0.0, 2.0, 1.0]]), axis=1), [[0.0, 1.0, 0.5]])
    assert minmax_scale(np.zeros((0, 2))).shape == (0, 2)
    np.testing.assert_array_equal(minmax_scale(np.array([[1.0], [1.0 + 1e-13]]), eps=1e-12), [[0.0], [0.0]])
    np.testing.assert_allclose(minmax_scale(np.array([[1.0], [1.0 + 1e-11]])), [[0.0], [1.0]])
    t = minmax_scale(torch.tensor(x))
    assert t.dtype == torch.float64
    np.testing.assert_array_equal(t.numpy(), out)  # NaN stays NaN in torch too
    c = minmax_scale(torch.tensor([[5.0], [np.nan], [5.0]]))
    assert c[0, 0] == 0 and torch.isnan(c[1, 0]) and c[2, 0] == 0
    ti = minmax_scale(torch.tensor([[1], [3], [2]]))
    assert ti.dtype == torch.float32 and ti[:, 0].tolist() == [0.0, 1.0, 0.5]
    np.testing.assert_array_equal(
        minmax_scale(torch.tensor([[0.0, 2.0, 1.0]]), axis=1).numpy(), [[0.0, 1.0, 0.5]]
    )
    torch.testing.assert_close(minmax_scale(torch.tensor([[1.0], [1.0 + 1e-6]]), eps=1e-5), torch.zeros(2, 1))


def test_pearson_precision_rules():
    rng = np.random.default_rng(3)
    f32 = torch.tensor(rng.normal(size=(200, 50)), dtype=torch.float32)
    p64 = torch.tensor(rng.normal(size=(3, 50)))
    # float32 features with float64 prototypes: computed in float64, returned as float32
    exact = pearson_similarity(f32.double(), p64).float()
    assert torch.equal(pearson_similarity(f32, p64), exact)
    # float32 by default, float64 only when asked
    p32 = p64.float()
    assert torch.equal(pearson_similarity(f32, p32), pearson_similarity(f32, p32, accumulate_float64=False))
    assert not torch.equal(
        pearson_similarity(f32, p32), pearson_similarity(f32, p32, accumulate_float64=True)
    )
    # numpy float32 input is computed in float64
    np.testing.assert_array_equal(
        pearson_similarity(f32.numpy(), p32.numpy()),
        pearson_similarity(f32.double().numpy(), p32.double().numpy()),
    )
    # rows of small norm are not constant rows
    small = 1e-3 * rng.normal(size=(2, 5))
    np.testing.assert_allclose(pearson_similarity(small, small), np.corrcoef(small), atol=1e-12)
    # rounding never leaves [-1, 1]
    same = pearson_similarity(f32, f32)
    assert float(same.max()) <= 1.0 and float(same.min()) >= -1.0
    assert float(pearson_similarity(f32, -f32).min()) >= -1.0
    assert float(same.diagonal().max()) == 1.0
    with pytest.raises(
        ValueError,
        match=r"^feature length 50 does not match prototype length 3 \(built with different HOG parameters or frame size\?\)$",
    ):
        pearson_similarity(f32, p32[:, :3])


def test_module_forward_passes_its_precision():
    p = np.random.default_rng(4).normal(size=(3, 40))
    x = torch.randn(50, 40)
    m = PearsonSimilarity(p, accumulate_float64=True)
    assert torch.equal(m(x), pearson_similarity(x, m.prototypes, accumulate_float64=True))


def test_minmax_scale_along_rows():
    x = np.array([[0.0, 2.0, 1.0], [4.0, 4.0, 8.0]])
    expected = [[0.0, 1.0, 0.5], [0.0, 0.0, 1.0]]
    np.testing.assert_array_equal(minmax_scale(x, axis=1), expected)
    np.testing.assert_array_equal(minmax_scale(torch.tensor(x), axis=1).numpy(), expected)
    nan_row = np.array([[np.nan, np.nan, np.nan], [1.0, 3.0, 2.0]])
    out = minmax_scale(nan_row, axis=1)
    assert np.isnan(out[0]).all() and out[1].tolist() == [0.0, 1.0, 0.5]


def test_expression_intensity_small_directions():
    """Directions of norm below 1 are fine; only a prototype equal to neutral is refused."""
    p = 0.1 * np.eye(3)
    out = expression_intensity((p[0] + 0.5 * (p[1] - p[0]))[None], p)
    np.testing.assert_allclose(out, [[0.5, 0.0]], atol=1e-12)
    with pytest.raises(
        ValueError, match="^an expression prototype equals the neutral one: its intensity is undefined$"
    ):
        expression_intensity(np.ones((1, 3)), np.stack([p[0], p[0], p[1]]))
