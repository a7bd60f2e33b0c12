"""Explanation maps: contributions add up, the CLI writes its files or fails cleanly, and on synthetic
faces (whose action units are known) each emotion's map sits on the pixels that emotion moves."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from mouseemo.cli import main
from mouseemo.constants import EMOTIONS
from mouseemo.data.synthetic.dynamics import pose
from mouseemo.data.synthetic.face import FaceRenderer, expression_region
from mouseemo.data.synthetic.writer import animal_identity
from mouseemo.errors import ConfigError
from mouseemo.inference import explain as ex
from mouseemo.models.prototypes_io import Prototypes, hog_params
from mouseemo.ops import hog
from mouseemo.ops.similarity import pearson_similarity
from tests.helpers import write_video

SIZE = (120, 160)
PPC = 8


@pytest.fixture(scope="module")
def faces():
    """Frames of one synthetic animal, 12 per label, with sensor noise, whisking and camera jitter."""
    identity, style = animal_identity(0, 0)
    renderer = FaceRenderer(identity, SIZE, camera={"noise_std": 4.0}, seed=1)
    rng = np.random.default_rng(0)
    frames, labels = [], []
    for k, emotion in enumerate(EMOTIONS):
        for _ in range(12):
            row = pose(emotion, rng.uniform(0.7, 1.0), style)
            row.update(
                whisker_phase=rng.uniform(0, 2 * np.pi), cam_dx=rng.normal(0, 0.5), cam_dy=rng.normal(0, 0.5)
            )
            frames.append(renderer.render(row))
            labels.append(k)
    return identity, style, np.stack(frames), np.array(labels)


def _protos(feats, labels, params, size=SIZE):
    matrix = np.stack([feats[labels == k].mean(0) for k in range(len(EMOTIONS))])
    return Prototypes(matrix=matrix, names=list(EMOTIONS), hog=params, frame_size=size)


def test_contributions_sum_to_the_similarities_they_explain():
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (5, 48, 64), dtype=np.uint8)
    params = hog_params(pixels_per_cell=8, cells_per_block=2, block_norm="L2")  # overlapping blocks
    feats = hog(frames, **params)
    matrix = feats[:3] + rng.normal(0, 0.01, feats[:3].shape)
    names = ["pleasure", "neutral", "pain"]
    r = pearson_similarity(feats, matrix)
    cells = ex.contribution_cells(feats, matrix, names, params, (48, 64))
    assert cells.shape == (5, 3, 6, 8)
    total = cells.sum(axis=(-2, -1))
    np.testing.assert_allclose(total[:, 1], r[:, 1], atol=1e-9)  # neutral: its own similarity
    np.testing.assert_allclose(total[:, [0, 2]], r[:, [0, 2]] - r[:, [1]], atol=1e-9)
    plain = ex.contribution_cells(feats, matrix, names, params, (48, 64), relative=None)
    np.testing.assert_allclose(plain.sum(axis=(-2, -1)), r, atol=1e-9)
    # folding: with 2x2 blocks an inner cell appears in 4 blocks, a corner cell in 1
    ones = ex.fold_cells(np.ones(feats.shape[1]), params, (48, 64))
    assert ones[0, 0] == 8 and ones[2, 3] == 32
    pix = ex.cells_to_pixels(cells, params, (50, 70))
    assert pix.shape == (5, 3, 50, 70) and np.all(pix[..., 48:, :] == 0)


def _share(m, region):
    m = np.clip(m, 0, None)
    return float((m * region).sum() / m.sum())


def test_prototype_maps_sit_on_each_emotions_action_units(faces):
    """Sanity check that can fail: the prototype-difference map of each emotion puts far more of its
    mass on the pixels the emotion's action units move than their share of the image, and prototypes
    from shuffled labels (the randomised control) lose that."""
    identity, style, frames, labels = faces
    params = hog_params(pixels_per_cell=PPC)
    feats = hog(frames, **params).astype(np.float64)
    maps = ex.prototype_maps(_protos(feats, labels, params))
    rng = np.random.default_rng(2)
    controls = [ex.prototype_maps(_protos(feats, rng.permutation(labels), params)) for _ in range(3)]
    rows = []
    for k, emotion in enumerate(EMOTIONS[1:], start=1):
        region = expression_region(identity, emotion, SIZE, style)
        area = float(region.mean())
        share = _share(maps[k], region)
        control = float(np.mean([_share(c[k], region) for c in controls]))
        rows.append(f"{emotion}: area {area:.3f} map {share:.3f} control {control:.3f}")
        assert 0.02 < area < 0.3, rows[-1]
        assert share > 2.0 * area, rows[-1]
        assert share > control + 0.07, rows[-1]
    print("\n".join(rows))
    assert np.all(maps[0] == 0)  # neutral minus neutral


def test_frame_contributions_point_at_the_expressed_emotion(faces):
    identity, style, frames, labels = faces
    params = hog_params(pixels_per_cell=PPC)
    feats = hog(frames, **params).astype(np.float64)
    protos = _protos(feats, labels, params)
    k = EMOTIONS.index("pain")
    frame = FaceRenderer(identity, SIZE).render({**pose("pain", 1.0, style), "whisker_phase": 1.0})
    maps = ex.contribution_maps(hog(frame[None], **params), protos.matrix, protos.names, params, SIZE)[0]
    region = expression_region(identity, "pain", SIZE, style)
    assert _share(maps[k], region) > 2.0 * region.mean()


# -- classifiers --------------------------------------------------------------------------------------
def _classifier(reference=None, channels=1):
    from mouseemo.models.classifier_module import ClassifierLitModule
    from mouseemo.models.components.cnn import SmallCNN

    torch.manual_seed(0)
    net = SmallCNN(in_channels=channels, num_classes=len(EMOTIONS), widths=(8, 16))
    return ClassifierLitModule(net, optimizer=torch.optim.SGD, reference=reference).eval()


@pytest.mark.parametrize(("reference", "channels"), [(None, 1), ("median", 2)])
@pytest.mark.parametrize("method", ["gradcam", "ig"])
def test_classifier_maps_per_class_at_frame_resolution(reference, channels, method):
    pytest.importorskip("captum")
    module = _classifier(reference, channels)
    frames = torch.randint(0, 256, (2, 24, 32), dtype=torch.uint8)
    ref = torch.full((1, 1, 24, 32), 100, dtype=torch.uint8) if reference else None
    maps = ex.attribution_maps(module, frames, method, ref, ig_steps=4)
    assert maps.shape == (2, len(EMOTIONS), 24, 32) and np.isfinite(maps).all()
    if method == "gradcam":
        assert (maps >= 0).all()
    own = ex.attribution_maps(module, frames, method, ref, ig_steps=4, targets=[3, 5], per_frame=True)
    np.testing.assert_allclose(own[:, 0], maps[[0, 1], [3, 5]], rtol=1e-4, atol=1e-6)


def test_missing_captum_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "captum", None)
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    with pytest.raises(ConfigError, match=r'pip install "mouseemo\[explain\]"'):
        ex.attribution_maps(_classifier(), torch.zeros(1, 24, 32, dtype=torch.uint8))


# -- the command --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def files(faces, tmp_path_factory):
    _, _, frames, labels = faces
    root = tmp_path_factory.mktemp("explain")
    video = write_video(root / "face.mp4", frames[::4])
    params = hog_params(pixels_per_cell=16)
    p = _protos(hog(frames, **params).astype(np.float64), labels, params)
    p.save(root / "protos.npz")
    Prototypes(p.matrix[:, :32], p.names, {**params, "pixels_per_cell": (48, 64)}, (96, 128)).save(
        root / "other.npz"
    )
    return root, video


def test_cli_writes_maps_and_figures(files, tmp_path):
    root, video = files
    out = tmp_path / "out"
    rc = main(["explain", str(video), "--prototypes", str(root / "protos.npz"), "--frames", "0,2-3",
               "--out", str(out), "--quiet"])  # fmt: skip
    assert rc == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["face.explain.npz", "face_frame000000.png", "face_frame000002.png",
                     "face_frame000003.png", "face_prototypes.png"]  # fmt: skip
    with np.load(out / "face.explain.npz", allow_pickle=False) as npz:
        assert npz["maps"].shape == (3, len(EMOTIONS), *SIZE)
        assert list(npz["frames"]) == [0, 2, 3] and list(npz["names"]) == list(EMOTIONS)
        assert str(npz["method"]) == "contrib" and npz["prototype_maps"].shape == (len(EMOTIONS), *SIZE)
    rc = main(["explain", "--prototypes", str(root / "protos.npz"), "--out", str(out), "--quiet"])
    assert rc == 0 and (out / "protos.png").exists() and (out / "protos.explain.npz").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--frames", "0,500"], "frame 500 is outside"),
        (["--frames", "0,x"], "--frames"),
        (["--frames", "0", "--prototypes-other"], "prototypes were built on"),
        (["--frames", "0", "--missing"], "video not found"),
        (["--frames", "0", "--method", "ig"], "--method ig explains classifier"),
    ],
)
def test_cli_bad_input_is_one_line_and_no_files(files, tmp_path, capsys, args, message):
    root, video = files
    protos = root / ("other.npz" if "--prototypes-other" in args else "protos.npz")
    video = root / "nothing.mp4" if "--missing" in args else video
    args = [a for a in args if a not in ("--prototypes-other", "--missing")]
    out = tmp_path / "out"
    rc = main(["explain", str(video), "--prototypes", str(protos), "--out", str(out), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("mouseemo: error:") and message in err[0], err
    assert not out.exists() or not any(out.iterdir())


def test_predict_overlay_map(files, tmp_path, capsys):
    root, video = files
    out = tmp_path / "pred"
    rc = main(["predict", str(video), "--prototypes", str(root / "protos.npz"), "--out", str(out),
               "--overlay", "--overlay-map", "--no-plot", "--quiet"])  # fmt: skip
    assert rc == 0 and (out / "face.overlay.mp4").stat().st_size > 0
    rc = main(["predict", str(video), "--prototypes", str(root / "protos.npz"), "--out", str(out),
               "--overlay-map", "--quiet"])  # fmt: skip
    assert rc == 2 and "add --overlay" in capsys.readouterr().err
