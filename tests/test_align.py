"""Cross-session alignment: known shifts, rotations and scales are recovered."""

import cv2
import numpy as np
import pytest
import torch

from mouseemo.data.align import align_to_reference, apply_alignment, mean_frame, phase_correlation
from mouseemo.errors import ConfigError, DataError
from tests.helpers import write_video

H, W = 112, 144
#: A coarse grid keeps the tests fast; the 4x finer refinement still has to reach 1 degree / 2 %.
GRID = {"max_angle": 8.0, "angle_step": 2.0, "scale_range": (0.92, 1.08), "scale_step": 0.04}


@pytest.fixture(scope="module")
def reference():
    """A face-like test card: smooth texture plus a few bright and dark shapes."""
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.random((H, W)).astype(np.float32), (0, 0), 3)
    img = (img - img.min()) / (img.max() - img.min()) * 160 + 40
    cv2.ellipse(img, (70, 58), (34, 22), 15, 0, 360, 235, -1)
    cv2.circle(img, (40, 35), 9, 15, -1)
    cv2.rectangle(img, (100, 70), (125, 95), 120, -1)
    return img.astype(np.float32)


def _move(img, angle, scale, tx, ty):
    m = cv2.getRotationMatrix2D(((W - 1) / 2, (H - 1) / 2), angle, scale)
    m[:, 2] += (tx, ty)
    return cv2.warpAffine(img, m, (W, H), flags=cv2.INTER_LINEAR), m


def test_phase_correlation_recovers_shift(reference):
    moved = np.roll(reference, (-3, 5), axis=(0, 1))
    shift, peak = phase_correlation(torch.tensor(reference), torch.tensor(moved))
    np.testing.assert_allclose(shift.numpy(), [-5, 3], atol=0.1)  # (dx, dy) that undoes the roll
    assert float(peak) > 0.5
    batch = torch.stack([torch.tensor(moved), torch.tensor(reference)])
    shifts, _ = phase_correlation(torch.tensor(reference), batch)
    np.testing.assert_allclose(shifts.numpy(), [[-5, 3], [0, 0]], atol=0.1)


@pytest.mark.parametrize(
    "angle, scale, tx, ty", [(4.0, 1.05, 5.0, -3.0), (-6.5, 0.94, -4.2, 6.7), (0.0, 1.0, 2.5, 0.0)]
)
def test_recovers_rotation_scale_shift(reference, angle, scale, tx, ty):
    moved, forward = _move(reference, angle, scale, tx, ty)
    al = align_to_reference(moved, reference, **GRID)
    # the alignment undoes the known transform
    assert al.angle_deg == pytest.approx(-angle, abs=1.0)
    assert al.scale == pytest.approx(1.0 / scale, rel=0.02)
    compose = np.vstack([al.matrix, [0, 0, 1]]) @ np.vstack([forward, [0, 0, 1]])
    pts = np.array([[20, 20, 1], [W - 20, 20, 1], [20, H - 20, 1], [W - 20, H - 20, 1]], float).T
    assert np.abs((compose @ pts)[:2] - pts[:2]).max() < 1.0  # within a pixel over the face
    assert al.score > 0.98 and al.score >= al.score_before
    # applying the matrix to the moved frame gives back the reference in the middle of the frame
    back = apply_alignment(moved, al.matrix)
    inner = (slice(20, H - 20), slice(20, W - 20))
    assert np.abs(back[inner] - reference[inner]).mean() < 4.0
    np.testing.assert_allclose(al.aligned, back, atol=1e-3)


def test_apply_alignment_types_and_crop(reference):
    moved, _ = _move(reference, 3.0, 1.0, 4.0, -2.0)
    al = align_to_reference(moved, reference, crop=(10, 20, 64, 48), **GRID)
    assert al.aligned.shape == (48, 64)
    frames = np.stack([moved, moved]).astype(np.uint8)
    out = apply_alignment(frames, al.matrix, crop=(10, 20, 64, 48))
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == (2, 48, 64)
    t = apply_alignment(torch.from_numpy(frames), torch.tensor(al.matrix))
    assert torch.is_tensor(t) and t.dtype == torch.uint8 and t.shape == (2, H, W)
    np.testing.assert_array_equal(t.numpy()[:, 20:68, 10:74], out)
    assert al.to_dict()["matrix"] == al.matrix.tolist()


def test_alignment_errors(reference):
    with pytest.raises(DataError, match="same"):
        align_to_reference(reference[:50], reference)
    with pytest.raises(DataError, match="one"):
        align_to_reference(reference[None], reference)
    with pytest.raises(ConfigError, match="grid"):
        align_to_reference(reference, reference, angle_step=0)
    with pytest.raises(ConfigError, match=r"\(2, 3\)"):
        apply_alignment(reference, np.eye(3))
    with pytest.raises(ConfigError, match="outside"):
        apply_alignment(reference, np.eye(3)[:2], crop=(0, 0, W + 1, 10))


def test_mean_frame_of_video(tmp_path, reference):
    frames = np.stack([reference + d for d in (-10, 0, 10)]).clip(0, 255).astype(np.uint8)
    path = write_video(tmp_path / "face.mp4", frames)
    mean = mean_frame(path, crop=(8, 8, 96, 80))
    assert mean.shape == (80, 96) and mean.dtype == np.float32
    assert np.abs(mean - reference[8:88, 8:104]).mean() < 6


@pytest.mark.gpu
def test_gpu_matches_cpu(reference):
    moved, _ = _move(reference, 4.0, 1.05, 5.0, -3.0)
    cpu = align_to_reference(moved, reference, **GRID)
    gpu = align_to_reference(torch.tensor(moved).cuda(), torch.tensor(reference).cuda(), **GRID)
    assert gpu.angle_deg == pytest.approx(cpu.angle_deg, abs=0.3)
    np.testing.assert_allclose(gpu.matrix, cpu.matrix, atol=0.2)
