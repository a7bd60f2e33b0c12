"""Exact values of the frame normalisation shared by the learned models."""

import numpy as np
import torch

from mouseemo.ops.frames import standardize_frames, to_unit_float


def test_to_unit_float_scales_uint8_and_passes_float_through():
    u8 = torch.tensor([[0, 51, 255]], dtype=torch.uint8)
    out = to_unit_float(u8)
    assert out.dtype == torch.float32
    assert torch.equal(out, torch.tensor([[0.0, 0.2, 1.0]]))
    f = torch.tensor([[3.0, -2.0]], dtype=torch.float64)
    assert to_unit_float(f) is f


def test_standardize_frames_matches_numpy_per_plane():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 10, size=(2, 3, 4, 5))
    out = standardize_frames(torch.tensor(x), eps=0.5).numpy()
    mean = x.mean(axis=(-2, -1), keepdims=True)
    std = x.std(axis=(-2, -1), keepdims=True, ddof=1)  # torch's unbiased std
    np.testing.assert_allclose(out, (x - mean) / (std + 0.5), rtol=1e-12)


def test_standardize_frames_default_eps_and_uint8():
    x = torch.tensor([[[0, 255], [255, 0]]], dtype=torch.uint8)
    out = standardize_frames(x)
    std = torch.tensor([[0.0, 1.0], [1.0, 0.0]]).std()
    expected = (torch.tensor([[[0.0, 1.0], [1.0, 0.0]]]) - 0.5) / (std + 1e-5)
    assert torch.allclose(out, expected, rtol=0, atol=1e-7)
    # a constant plane stays finite: 0 / eps
    assert torch.equal(standardize_frames(torch.full((1, 2, 2), 7.0)), torch.zeros(1, 2, 2))
