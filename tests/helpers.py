"""Test fixtures: the shared ones of :mod:`mouseemo.testing` (session folders, face-like frames, tiny
checkpoints), and the tests' own (HOG references, score checks, tail-shock mice)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mouseemo.constants import EMOTIONS
from mouseemo.testing import (  # noqa: F401 - the tests import these from here
    label_frames,
    write_dataset,
    write_session,
    write_video,
)


def ramp_frames(labels: np.ndarray, size: tuple[int, int] = (48, 64), seed: int = 0) -> np.ndarray:
    """Frames whose class is the sign of a left-right brightness ramp (class 0 brighter on the right,
    class 1 on the left) under fresh smoothed noise; label indices above 1 are not drawn.

    HOG bins unsigned gradient orientations (0-180 degrees) and normalises each cell, so the two ramps
    fall into the same bins with the same weights: HOG cannot tell the classes apart, a network that
    sees signed brightness can.
    """
    rng = np.random.default_rng(seed)
    h, w = size
    ramp = np.linspace(-1.0, 1.0, w)[None, :] * np.ones((h, 1))
    frames = np.empty((len(labels), h, w), dtype=np.uint8)
    for i, lab in enumerate(labels):
        noise = cv2.GaussianBlur(rng.normal(0, 1, size).astype(np.float32), (0, 0), 1.5)
        noise *= 12.0 / max(float(noise.std()), 1e-6)
        sign = 1.0 if lab == 0 else -1.0
        frames[i] = np.clip(120 + 50 * sign * ramp + noise, 0, 255).astype(np.uint8)
    return frames


def hog_gradients(image: np.ndarray, sqrt: bool) -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's float64 HOG gradients ``(g_col, g_row)`` of a gray uint8 image."""
    f = image.astype(np.float64)
    if sqrt:
        f = np.sqrt(f)
    g_row, g_col = np.zeros_like(f), np.zeros_like(f)
    g_row[1:-1] = f[2:] - f[:-2]
    g_col[:, 1:-1] = f[:, 2:] - f[:, :-2]
    return g_col, g_row


def skimage_bins(gx: np.ndarray, gy: np.ndarray, n: int) -> np.ndarray:
    """scikit-image's own per-pixel binning of these gradients; -1 where no bin gets the pixel.

    Runs scikit-image's compiled histogram routine on a 1 x N "image" of 1 x 1 cells, so each pixel
    is its own cell and the bin is the histogram's non-zero entry. Falls back to the same formula in
    numpy if the private routine moves.
    """
    gc = np.ascontiguousarray(gx, dtype=np.float64).reshape(1, -1)
    gr = np.ascontiguousarray(gy, dtype=np.float64).reshape(1, -1)
    width = gc.shape[1]
    try:
        from skimage.feature import _hoghistogram

        hist = np.zeros((1, width, n))
        _hoghistogram.hog_histograms(gc, gr, 1, 1, width, 1, width, 1, n, hist)
        out = hist[0].argmax(1)
        out[hist[0].max(1) == 0] = -1
        return out
    except ImportError:  # pragma: no cover - depends on the installed scikit-image
        theta = np.rad2deg(np.arctan2(gr[0], gc[0])) % 180
        edges = (180.0 / n) * np.arange(n + 1)
        out = np.searchsorted(edges, theta, side="right") - 1
        out[(out >= n) | (np.hypot(gr[0], gc[0]) == 0)] = -1
        return out


def check_reported_scores(metrics: dict, run_dir: Path, classes=EMOTIONS) -> None:
    """The test scores a run reports agree with its own confusion matrix and its per-frame predictions.

    Recomputes accuracy and macro-F1 (over the classes that occur in truth or prediction) from
    ``test_predictions.csv`` and checks them, and the confusion matrix, against ``metrics``.
    """
    import csv

    with open(Path(run_dir) / "test_predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows, "no test predictions written"
    index = {c: i for i, c in enumerate(classes)}
    k = len(classes)
    confmat = np.zeros((k, k), dtype=np.int64)
    for r in rows:
        if r["label"] in index:  # frames without a label are not scored
            confmat[index[r["label"]], index[r["pred"]]] += 1
    assert confmat.sum() > 0
    reported = np.asarray(metrics["test/confusion_matrix"])
    np.testing.assert_array_equal(reported, confmat)
    tp = np.diag(confmat).astype(float)
    fp, fn = confmat.sum(0) - tp, confmat.sum(1) - tp
    seen = (tp + fp + fn) > 0
    f1 = np.where(seen, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    assert abs(metrics["test/accuracy"] - tp.sum() / confmat.sum()) < 1e-5
    assert abs(metrics["test/macro_f1"] - f1[seen].mean()) < 1e-5


TAIL_SHOCK_FPS = 20.0


def fake_tail_shock_mouse(
    root: Path,
    name: str = "m1",
    currents=(0, 0, 500, 500),
    frames: int = 20,
    size: tuple[int, int] = (32, 24),
) -> Path:
    """A mouse folder as the tail-shock source data has it: clips ``c<i>.mp4`` of flat gray frames
    (``size`` is width, height), ``trials.csv`` and ``events.csv`` on the clip clock."""
    d = Path(root) / name
    d.mkdir(parents=True)
    lines = ["clip,current_uA,intensity_level,repeat"]
    for i, c in enumerate(currents):
        clip = f"c{i}.mp4"
        vw = cv2.VideoWriter(str(d / clip), cv2.VideoWriter_fourcc(*"mp4v"), TAIL_SHOCK_FPS, size, True)
        for _ in range(frames):
            vw.write(np.full((size[1], size[0], 3), 40 + 10 * i, np.uint8))
        vw.release()
        lines.append(f"{clip},{c},{int(c > 0)},{i}")
    (d / "trials.csv").write_text("\n".join(lines) + "\n")
    (d / "events.csv").write_text("onset,duration,label\n0.40,0.4,pain\n")
    return d


def synthetic_world(tmp_path_factory, name: str, **kw) -> Path:
    """A synthetic dataset (:func:`mouseemo.data.synthetic.generate_dataset` with ``kw``, one worker)
    in a fresh temporary folder ``name``; returns the folder."""
    from mouseemo.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp(name)
    generate_dataset(root, workers=1, **kw)
    return root


def check_missing_and_garbage(open_file, tmp_path: Path, suffix: str, missing: str, garbage: str) -> None:
    """``open_file`` raises DataError (message matching ``missing``) for a file that is not there, and
    (matching ``garbage``) for a ``bad<suffix>`` file of bytes of no such format."""
    import pytest

    from mouseemo.errors import DataError

    with pytest.raises(DataError, match=missing):
        open_file(tmp_path / f"missing{suffix}")
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(b"definitely not a " + suffix.encode())
    with pytest.raises(DataError, match=garbage):
        open_file(bad)


def check_clip_input_errors(model_class, net, clip_length: int, channels: int) -> None:
    """A clip model refuses clips of another length and inputs that are not ``(B, T, C, H, W)``, and
    its class refuses ``clip_length < 2``."""
    import pytest
    import torch

    from mouseemo.errors import ConfigError
    from mouseemo.models.components.cnn import SmallCNN

    with pytest.raises(ValueError, match=f"clips of {clip_length} frames"):
        net(torch.rand(2, clip_length - 1, channels, 24, 32))
    with pytest.raises(ValueError, match=r"\(B, T, C, H, W\)"):
        net(torch.rand(2, channels, 24, 32))
    with pytest.raises(ConfigError, match="clip_length >= 2"):
        model_class(SmallCNN(), clip_length=1)
