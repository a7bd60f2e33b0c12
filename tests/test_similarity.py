"""Pearson similarity and min-max scaling (mouseemo.ops.similarity)."""

import numpy as np
import pytest
import torch

from mouseemo.ops.similarity import PearsonSimilarity, minmax_scale, pearson_similarity


@pytest.fixture()
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(40, 96)), rng.normal(size=(5, 96))


def _reference(f, p):
    return np.corrcoef(np.vstack([f, p]))[: len(f), len(f) :]


def test_numpy_matches_corrcoef(data):
    f, p = data
    sim = pearson_similarity(f, p)
    assert isinstance(sim, np.ndarray) and sim.dtype == np.float64 and sim.shape == (40, 5)
    np.testing.assert_allclose(sim, _reference(f, p), atol=1e-12)


def test_torch_float32_and_float64_accumulation(data):
    f, p = data
    ft, pt = torch.tensor(f, dtype=torch.float32), torch.tensor(p, dtype=torch.float32)
    sim = pearson_similarity(ft, pt)
    assert sim.dtype == torch.float32 and sim.device == ft.device
    np.testing.assert_allclose(sim.numpy(), _reference(f, p), atol=1e-5)
    exact = pearson_similarity(ft, pt, accumulate_float64=True)
    assert exact.dtype == torch.float32
    ref32 = _reference(ft.double().numpy(), pt.double().numpy())
    np.testing.assert_allclose(exact.numpy(), ref32, atol=1e-7)
    sim64 = pearson_similarity(torch.tensor(f), torch.tensor(p))
    assert sim64.dtype == torch.float64
    np.testing.assert_allclose(sim64.numpy(), _reference(f, p), atol=1e-12)


def test_shapes_constant_rows_and_errors(data):
    f, p = data
    assert pearson_similarity(f[0], p).shape == (5,)
    assert pearson_similarity(f, p[0]).shape == (40,)
    assert np.ndim(pearson_similarity(f[0], p[0])) == 0
    f = f.copy()
    f[3] = 7.0  # constant vector (an all-zero HOG of a blank frame): defined as 0, never NaN
    sim = pearson_similarity(f, p)
    assert np.all(sim[3] == 0) and np.isfinite(sim).all()
    # scale and offset invariance of a correlation
    np.testing.assert_allclose(pearson_similarity(3 * f + 2, p), sim, atol=1e-12)
    with pytest.raises(ValueError, match="does not match prototype length"):
        pearson_similarity(f, p[:, :10])
    with pytest.raises(ValueError, match="must be"):
        pearson_similarity(f[None], p)


def test_module_equals_function(data):
    f, p = data
    mod = PearsonSimilarity(p)
    ft = torch.tensor(f, dtype=torch.float32)
    torch.testing.assert_close(mod(ft), pearson_similarity(ft, torch.tensor(p, dtype=torch.float32)))
    with pytest.raises(ValueError, match=r"\(K, D\)"):
        PearsonSimilarity(p[0])


def test_minmax_scale():
    x = np.array([[1.0, 5.0, np.nan], [3.0, 5.0, 2.0], [2.0, 5.0, 4.0]])
    out = minmax_scale(x, axis=0)
    np.testing.assert_allclose(out[:, 0], [0.0, 1.0, 0.5])
    np.testing.assert_array_equal(out[:, 1], [0.0, 0.0, 0.0])  # constant trace
    assert np.isnan(out[0, 2]) and out[1, 2] == 0.0 and out[2, 2] == 1.0
    t = minmax_scale(torch.tensor(x[:, :2]), axis=0)
    np.testing.assert_allclose(t.numpy(), out[:, :2])
    np.testing.assert_allclose(minmax_scale(x[:, 0], axis=0), out[:, 0])


@pytest.mark.gpu
def test_gpu_matches_cpu(data):
    f, p = (torch.tensor(a, dtype=torch.float32) for a in data)
    cpu = pearson_similarity(f, p)
    gpu = pearson_similarity(f.cuda(), p.cuda())
    assert gpu.is_cuda
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-6, rtol=0)
