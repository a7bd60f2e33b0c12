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


def _maps_and_controls(faces, maps_of):
    """``maps_of`` the prototypes of the faces' labels, and of three shuffles of them (the control)."""
    _, _, frames, labels = faces
    params = hog_params(pixels_per_cell=PPC)
    feats = hog(frames, **params).astype(np.float64)
    rng = np.random.default_rng(2)
    controls = [maps_of(_protos(feats, rng.permutation(labels), params)) for _ in range(3)]
    return maps_of(_protos(feats, labels, params)), controls


def test_prototype_maps_sit_on_each_emotions_action_units(faces):
    """Sanity check that can fail: the prototype-difference map of each emotion puts far more of its
    mass on the pixels the emotion's action units move than their share of the image, and prototypes
    from shuffled labels (the randomised control) lose that."""
    identity, style, _, _ = faces
    maps, controls = _maps_and_controls(faces, ex.prototype_maps)
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


def _cell_mask(region, ppc, shape):
    """Cells (``shape``, ``ppc``-pixel squares from the top left) any pixel of ``region`` falls in."""
    ncy, ncx = shape
    return region[: ncy * ppc, : ncx * ppc].reshape(ncy, ppc, ncx, ppc).any(axis=(1, 3))


def test_prototype_maps_put_most_mass_on_action_unit_cells(faces):
    """At the maps' own (cell) resolution: more than half of each emotion's mass lies on the cells the
    emotions' action units touch (the union of the regions, 30% of the cells), and 45-56% on the cells of
    its own region (17-24% of the cells); shuffled-label prototypes put 36-40% and 25-34% there."""
    identity, style, _, _ = faces
    cells, controls = _maps_and_controls(faces, ex.prototype_cell_maps)
    regions = {e: expression_region(identity, e, SIZE, style) for e in EMOTIONS[1:]}
    union = _cell_mask(np.any(list(regions.values()), axis=0), PPC, cells.shape[-2:])
    rows = [f"union of the regions: {union.mean():.3f} of the cells"]
    for k, emotion in enumerate(EMOTIONS[1:], start=1):
        own = _cell_mask(regions[emotion], PPC, cells.shape[-2:])
        share, on_union = _share(cells[k], own), _share(cells[k], union)
        control = float(np.mean([_share(c[k], own) for c in controls]))
        control_union = float(np.mean([_share(c[k], union) for c in controls]))
        rows.append(
            f"{emotion}: own cells {own.mean():.3f} map {share:.3f} control {control:.3f}; "
            f"union map {on_union:.3f} control {control_union:.3f}"
        )
        assert on_union > 0.52 and on_union > 1.7 * union.mean(), rows[-1]
        assert on_union > control_union + 0.12, rows[-1]
        assert share > 0.42 and share > 1.9 * own.mean() and share > control + 0.14, rows[-1]
    print("\n".join(rows))


def test_frame_contributions_are_class_specific_unlike_shuffled_prototypes_or_a_model_free_map(faces):
    """On a clean frame of each emotion, the similarity-contribution map for the emotion's own prototype
    puts a larger share of its positive mass on the emotion's action units than the maps for the other
    prototypes on the same frame (class specificity, :func:`_region_shares`). The model-free map
    ``|frame - mean neutral frame|`` puts more of its mass there (0.64-0.74) than any of these maps
    (0.43-0.53), but it is the same for every prototype: specificity 0. Prototypes from shuffled labels
    (mean of 3 shuffles) lose the specificity.

    Measured for data seeds 0, 1, 2, 3 (the ``faces`` fixture is seed 0; per emotion: pleasure,
    disgust, malaise, pain, passive_fear, active_fear):

    * specificity: seed 0 .269 .151 .160 .118 .114 .097; seed 1 .292 .117 .172 .073 .143 .080;
      seed 2 .243 .130 .170 .100 .151 .108; seed 3 .274 .132 .149 .082 .120 .124 (means .152 .146
      .150 .147) -> each > 0.03 (smallest .073), mean > 0.08;
    * minus the shuffled prototypes' specificity: smallest per seed .109 .073 .071 .123 -> > 0.03.
    """
    identity, style, frames, labels = faces
    params = hog_params(pixels_per_cell=PPC)
    feats = hog(frames, **params).astype(np.float64)
    rng = np.random.default_rng(2)
    shuffled = [_protos(feats, rng.permutation(labels), params) for _ in range(3)]
    clean = np.stack(
        [
            FaceRenderer(identity, SIZE).render({**pose(e, 1.0, style), "whisker_phase": 1.0})
            for e in EMOTIONS[1:]
        ]
    )
    clean_labels = np.arange(1, len(EMOTIONS))
    regions = {e: expression_region(identity, e, SIZE, style) for e in EMOTIONS[1:]}

    def specificity(protos):
        maps = ex.contribution_maps(hog(clean, **params), protos.matrix, protos.names, params, SIZE)
        return _region_shares(maps, clean_labels, regions)

    trained = specificity(_protos(feats, labels, params))
    controls = [specificity(p) for p in shuffled]
    free = np.abs(clean - frames[labels == 0].astype(np.float64).mean(0))[:, None].repeat(len(EMOTIONS), 1)
    model_free = _region_shares(free, clean_labels, regions)
    rows = []
    for emotion in EMOTIONS[1:]:
        t, f = trained[emotion], model_free[emotion]
        control = float(np.mean([c[emotion]["spec"] for c in controls]))
        rows.append(
            f"{emotion}: own share {t['own']:.3f} (model-free {f['own']:.3f}) | specificity {t['spec']:+.3f} "
            f"shuffled {control:+.3f} model-free {f['spec']:+.3f}"
        )
        assert abs(f["spec"]) < 1e-9, rows[-1]  # the measure a model-free map cannot pass
        assert t["spec"] > 0.03 and t["spec"] > control + 0.03, rows[-1]
    print("\n".join(rows))
    assert np.mean([trained[e]["spec"] for e in EMOTIONS[1:]]) > 0.08, rows


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


@pytest.mark.parametrize(("reference", "channels"), [(None, 1), ("median", 2)])
def test_overlay_gradcam_without_captum_equals_captum(reference, channels):
    """``predict --overlay-map`` draws Grad-CAM in plain torch; it matches captum's to rounding."""
    pytest.importorskip("captum")
    module = _classifier(reference, channels)
    frames = torch.randint(0, 256, (3, 24, 32), dtype=torch.uint8)
    ref = torch.full((1, 1, 24, 32), 100, dtype=torch.uint8) if reference else None
    own = ex.gradcam_maps(module, frames, [3, 5, 0], ref)
    want = ex.attribution_maps(module, frames, "gradcam", ref, targets=[3, 5, 0], per_frame=True)[:, 0]
    assert own.shape == (3, 24, 32) and own.dtype == np.float32
    np.testing.assert_allclose(own, want, rtol=1e-4, atol=1e-6)


CNN_SIZE = (60, 80)


def train_cnn(seed: int = 0):
    """A SmallCNN classifier trained (plain loop, ~3 s on one core; ``seed`` sets its initial weights
    and batch order) on synthetic faces of one animal with sensor noise, whisking and camera jitter;
    held-out frames, their labels and per-class test accuracy; the animal's action-unit regions; five
    copies with all weights re-initialised; and the mean neutral training frame."""
    import copy

    identity, style = animal_identity(0, 0)
    renderer = FaceRenderer(identity, CNN_SIZE, camera={"noise_std": 4.0}, seed=1)
    rng = np.random.default_rng(0)

    def render(n):
        frames, labels = [], []
        for k, emotion in enumerate(EMOTIONS):
            for _ in range(n):
                row = pose(emotion, rng.uniform(0.7, 1.0), style)
                row.update(
                    whisker_phase=rng.uniform(0, 2 * np.pi),
                    cam_dx=rng.normal(0, 0.5),
                    cam_dy=rng.normal(0, 0.5),
                )
                frames.append(renderer.render(row))
                labels.append(k)
        return torch.from_numpy(np.stack(frames)), torch.tensor(labels)

    x, y = render(32)
    test_x, test_y = render(6)
    from mouseemo.models.classifier_module import ClassifierLitModule
    from mouseemo.models.components.cnn import SmallCNN

    torch.manual_seed(seed)
    net = SmallCNN(in_channels=1, num_classes=len(EMOTIONS), widths=(8, 16), dropout=0.0)
    module = ClassifierLitModule(net, optimizer=torch.optim.SGD)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(40):
        module.train()
        for b in torch.randperm(len(x)).split(32):
            loss = torch.nn.functional.cross_entropy(net(ex.network_input(module, x[b])), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    module.eval()
    with torch.no_grad():
        pred = net(ex.network_input(module, test_x)).argmax(1)
    accuracy = [float((pred[test_y == k] == k).float().mean()) for k in range(len(EMOTIONS))]

    def randomised(seed):
        other = copy.deepcopy(module)
        torch.manual_seed(seed)
        for m in other.net.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
        return other.eval()

    regions = {e: expression_region(identity, e, CNN_SIZE, style) for e in EMOTIONS[1:]}
    neutral = x[y == 0].float().mean(0).numpy()
    randoms = [randomised(100 * seed + s) for s in range(5)]
    return module, randoms, test_x, test_y.numpy(), accuracy, regions, neutral


@pytest.fixture(scope="module")
def trained_cnn():
    return train_cnn(0)


def _region_shares(maps, labels, regions):
    """Per emotion ``c``, means over the test frames of class ``c`` of the share of positive mass on
    ``c``'s region: of the map for target ``c`` (``own``), and of the maps for every other class target
    on the same frames (``other``); ``spec = own - other`` is the map's class specificity (a map that
    ignores the class target, such as the model-free ``|frame - mean neutral frame|``, has 0); and the
    share of ``c``'s map on the union of the regions. Maps without positive mass (as Grad-CAM of a
    random network may give) are left out."""
    union = np.any(list(regions.values()), axis=0)
    out = {}
    for k, emotion in enumerate(EMOTIONS[1:], start=1):
        region = regions[emotion]
        own, other, on_union = [], [], []
        for m in maps[labels == k]:
            for j, target in enumerate(m):
                if np.clip(target, 0, None).sum() > 0:
                    (own if j == k else other).append(_share(target, region))
                    if j == k:
                        on_union.append(_share(target, union))
        mean = [float(np.mean(v)) if v else np.nan for v in (own, other, on_union)]
        out[emotion] = {"own": mean[0], "other": mean[1], "spec": mean[0] - mean[1], "union": mean[2]}
    return out


def _cnn_sanity_rows(trained_cnn, method):
    """Per emotion: test accuracy, region area, and :func:`_region_shares` of the trained network, of
    its re-initialised copies (mean of the draws; a draw without positive mass counts as unspecific)
    and of the model-free map."""
    module, random_modules, frames, labels, accuracy, regions, neutral = trained_cnn
    trained = _region_shares(ex.attribution_maps(module, frames, method, ig_steps=16), labels, regions)
    randoms = [
        _region_shares(ex.attribution_maps(m, frames, method, ig_steps=16), labels, regions)
        for m in random_modules
    ]
    free = np.abs(frames.float().numpy() - neutral)[:, None].repeat(len(EMOTIONS), axis=1)
    model_free = _region_shares(free, labels, regions)
    rows, text = [], []
    for k, emotion in enumerate(EMOTIONS[1:], start=1):
        rnd = {
            key: float(np.nan_to_num(np.nanmean([r[emotion][key] for r in randoms]), nan=0.0))
            for key in ("own", "spec", "union")
        }
        rows.append(
            {"emotion": emotion, "acc": accuracy[k], "area": float(regions[emotion].mean()),
             "trained": trained[emotion], "random": rnd, "free": model_free[emotion]}
        )  # fmt: skip
        t, f = trained[emotion], model_free[emotion]
        text.append(
            f"{emotion}: acc {accuracy[k]:.2f} area {rows[-1]['area']:.3f} | own share trained {t['own']:.3f} "
            f"random {rnd['own']:.3f} free {f['own']:.3f} | specificity trained {t['spec']:+.3f} "
            f"random {rnd['spec']:+.3f} free {f['spec']:+.3f} | union trained {t['union']:.3f} "
            f"random {rnd['union']:.3f}"
        )
    print(f"\n{method}\n" + "\n".join(text))
    return rows, text


def test_gradcam_of_a_trained_cnn_is_class_specific_unlike_random_weights_or_a_model_free_map(trained_cnn):
    """Sanity checks that can fail. Area alone cannot: the model-free map ``|frame - mean neutral
    frame|`` puts 0.52-0.64 of its mass on each emotion's action units, more than Grad-CAM does. So, on
    the frames of each emotion the model classifies well:

    * class specificity: the Grad-CAM map for the emotion's own class puts a larger share of its mass
      on the emotion's region than the maps for the other class targets on the same frames do. The
      model-free map is the same for every target (specificity 0) and fails this;
    * the randomised network (all weights re-initialised, Adebayo et al. 2018; mean of 5 draws) is
      less specific and puts less of its own-class map on the region.

    Measured for training seeds 0, 1, 2, 3 (per emotion: pleasure, disgust, malaise, pain,
    passive_fear, active_fear; all classified at >= 0.83):

    * specificity: seed 0 .321 .338 .138 .334 .267 .262; seed 1 .238 .374 .078 .211 .147 .192;
      seed 2 .213 .377 .134 .222 .194 .206; seed 3 .231 .393 .127 .309 .179 .213 (mean over emotions
      .277 .207 .224 .242) -> each > 0.04 (smallest .078), mean > 0.12;
    * specificity minus the randomised network's: smallest per seed .110 .088 .179 .144 -> > 0.04;
    * own share minus the randomised network's: smallest per seed .089 .091 .196 .148 -> > 0.04.
    """
    pytest.importorskip("captum")
    rows, text = _cnn_sanity_rows(trained_cnn, "gradcam")
    good = [r for r in rows if r["acc"] >= 0.8]
    assert len(good) >= 5, text
    for r, line in zip(rows, text):
        assert abs(r["free"]["spec"]) < 1e-9, line  # the measure a model-free map cannot pass
        if r["acc"] < 0.8:
            continue
        t, rnd = r["trained"], r["random"]
        assert t["spec"] > 0.04 and t["spec"] > rnd["spec"] + 0.04, line
        assert t["own"] > rnd["own"] + 0.04, line
    assert np.mean([r["trained"]["spec"] for r in good]) > 0.12, text


@pytest.mark.slow
def test_integrated_gradients_of_a_trained_cnn_against_random_weights(trained_cnn):
    """Integrated gradients (zero baseline, positive part) follow the input's edges: a trained CNN's
    maps sit on the action units more than their area share, but only a little more than those of
    the randomised network. Measured for training seeds 0, 1, 2, 3 (per emotion: pleasure, disgust,
    malaise, pain, passive_fear, active_fear):

    * own share / area: smallest per seed 1.59 2.09 1.91 2.06 -> > 1.4;
    * own share minus the randomised network's: seed 0 .062 .102 .046 .032 .041 .065; seed 1 .137
      .121 .124 .074 .071 .094; seed 2 .126 .126 .086 .098 .053 .059; seed 3 .120 .142 .108 .104 .043
      .088 (means .058 .104 .091 .101) -> each > 0.01, mean > 0.03.
    """
    pytest.importorskip("captum")
    rows, text = _cnn_sanity_rows(trained_cnn, "ig")
    good = [r for r in rows if r["acc"] >= 0.8]
    assert len(good) >= 5, text
    for r in good:
        assert r["trained"]["own"] > 1.4 * r["area"] and r["trained"]["own"] > r["random"]["own"] + 0.01, text
    assert np.mean([r["trained"]["own"] - r["random"]["own"] for r in good]) > 0.03, text


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


# -- the command with checkpoints -------------------------------------------------------------------
@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """A tiny trained CNN (crop + resize to 24x32) and a model=hog_proto checkpoint, on 48x64 frames."""
    from tests.helpers import write_dataset
    from tests.test_train import train_small_checkpoints

    base = tmp_path_factory.mktemp("explain_ckpt")
    ds = write_dataset(base / "ds", num_mice=3, num_frames=80)
    return {"video": ds / "m02" / "s01" / "face.mp4", **train_small_checkpoints(base, ds)}


@pytest.mark.parametrize(
    ("model", "method", "size"),
    [("cnn", "gradcam", (44, 60)), ("cnn", "ig", (44, 60)), ("hog_proto", None, (48, 64))],
)
def test_cli_explains_checkpoints(ckpts, tmp_path, model, method, size):
    if model == "cnn":
        pytest.importorskip("captum")
    out = tmp_path / "out"
    args = ["--method", method, "--ig-steps", "4"] if method else []
    rc = main(["explain", str(ckpts["video"]), "--ckpt", str(ckpts[model]), "--frames", "3,10-11",
               "--out", str(out), "--quiet", *args])  # fmt: skip
    assert rc == 0
    frames = ["face_frame000003.png", "face_frame000010.png", "face_frame000011.png"]
    extra = ["face_prototypes.png"] if model == "hog_proto" else []
    assert sorted(p.name for p in out.iterdir()) == sorted(["face.explain.npz", *frames, *extra])
    with np.load(out / "face.explain.npz", allow_pickle=False) as npz:
        names = list(npz["names"])  # a hog_proto model has a prototype per class its training split held
        assert names == list(EMOTIONS) if model == "cnn" else set(names) <= set(EMOTIONS) and len(names) > 1
        assert npz["maps"].shape == (3, len(names), *size) and np.isfinite(npz["maps"]).all()
        assert npz["images"].shape == (3, *size) and list(npz["frames"]) == [3, 10, 11]
        assert str(npz["method"]) == (method or "contrib") and npz["scores"].shape == (3, len(names))
        assert ("prototype_maps" in npz.files) == (model == "hog_proto")
        if method == "gradcam":
            assert (npz["maps"] >= 0).all() and npz["maps"].max() > 0


@pytest.mark.parametrize("model", ["cnn", "hog_proto"])
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--frames", "0,500"], "frame 500 is outside"),
        (["--frames", "20-10"], "--frames"),
        (["--frames", "-3"], "--frames"),
        (["--frames", "0", "--missing"], "video not found"),
    ],
)
def test_cli_checkpoint_bad_input_is_one_line_and_no_files(ckpts, tmp_path, capsys, model, args, message):
    if model == "cnn":
        pytest.importorskip("captum")
    video = ckpts["video"].parent / "nothing.mp4" if "--missing" in args else ckpts["video"]
    args = [a for a in args if a != "--missing"]
    out = tmp_path / "out"
    rc = main(["explain", str(video), "--ckpt", str(ckpts[model]), "--out", str(out), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("mouseemo: error:") and message in err[0], err
    assert not out.exists() or not any(out.iterdir())
