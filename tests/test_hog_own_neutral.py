"""HOG baselines score each session against its own neutral face, as the paper does for a new animal."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mouseemo.data.face_datamodule import FaceFramesDataModule
from mouseemo.data.video import session_reference
from mouseemo.errors import ConfigError
from mouseemo.models.hog_proto_module import HogProtoLitModule, HogRFLitModule
from mouseemo.ops import hog
from tests.helpers import write_dataset, write_session

HOG = {"pixels_per_cell": [16, 16]}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("ds"), num_mice=2, num_frames=80)


def _datamodule(root, image_size=(48, 64)):
    dm = FaceFramesDataModule(
        str(root), synthesize=None, label_source="truth", image_size=image_size,
        split={"test_animals": 1, "val_animals": 0}, batch_size=16,
    )  # fmt: skip
    dm.prepare_data()
    dm.setup()
    return dm


def _attach(model, dm):
    model._trainer = SimpleNamespace(datamodule=dm)
    return model


def _hog_mean(frames):
    return hog(torch.from_numpy(np.ascontiguousarray(frames)), pixels_per_cell=16).double().mean(0).numpy()


def test_the_neutral_of_a_session_is_the_hog_of_its_prestimulus_frames(dataset):
    dm = _datamodule(dataset)
    model = _attach(HogProtoLitModule(hog=HOG), dm)
    model._ensure_neutrals()
    assert sorted(model.neutrals) == ["m01/s01", "m02/s01"]
    for sf in dm.sessions:
        frames = np.load(sf.cache_path)
        # events.csv: a neutral block 0-1 s, then the first stimulus at 1 s (20 frames at 20 fps)
        expected = _hog_mean(frames[:20])
        np.testing.assert_allclose(model.neutrals[sf.name], expected, atol=1e-5)
        assert model.neutral_sources[sf.name] == "pre-stimulus (20 frames)"
        # not the session's mean face, nor the other animal's neutral
        assert not np.allclose(model.neutrals[sf.name], _hog_mean(frames), atol=1e-3)
    assert not np.allclose(model.neutrals["m01/s01"], model.neutrals["m02/s01"], atol=1e-3)


def test_scores_follow_the_test_sessions_own_neutral():
    rng = np.random.default_rng(0)
    d = 24
    n_train, n_test = rng.uniform(0, 1, d), rng.uniform(0, 1, d) * 3 + 2  # very different faces
    change = np.zeros(d)
    change[:6] = 0.8  # what pain does to a face, whoever's face it is
    noise = lambda n: rng.normal(0, 0.01, (n, d))  # noqa: E731
    feats = np.concatenate([n_train + noise(20), n_train + change + noise(10)])
    labels = np.array([0] * 20 + [4] * 10)
    data = {
        "features": feats.astype(np.float32),
        "label": labels,
        "t_cam": np.arange(30) / 20,
        "frame": np.arange(30),
        "group": np.array(["m1/s01"] * 30),
        "animal": np.array(["m1"] * 30),
    }
    test = torch.as_tensor(np.stack([n_test, n_test + change]), dtype=torch.float32)
    groups = ["m9/s01", "m9/s01"]

    own = HogProtoLitModule(hog=HOG, k=5, neutral="own")
    own.frame_size = (48, 64)
    own.neutrals = {"m1/s01": n_train, "m9/s01": n_test}
    own._fit(data)
    sim, pred = own._scores(test, groups)
    assert pred.tolist() == [0, 4]  # neutral, pain: read against the test animal's own neutral
    assert sim[0, 0] == pytest.approx(1.0, abs=1e-5)  # its neutral face is its own neutral prototype
    # the stored prototypes are the training animal's; the test session gets its own neutral + change
    torch.testing.assert_close(
        own.session_prototypes("m9/s01")[1] - own.session_prototypes("m9/s01")[0],
        own.prototypes[1] - own.prototypes[0],
    )
    # a shifted neutral moves the scores with it: the test animal's other face is no longer neutral
    own.neutrals["m9/s01"] = n_test + 0.5 * rng.uniform(0, 1, d)
    assert own._scores(test, groups)[0][0, 0] < 0.999

    # the training animal's neutral for everyone (neutral=training) cannot read the new face
    trained = HogProtoLitModule(hog=HOG, k=5, neutral="training")
    trained.frame_size = (48, 64)
    trained._fit(data)
    assert trained._scores(test, groups)[0][0, 0] < 0.99


def test_hog_rf_uses_session_normalised_features(dataset):
    dm = _datamodule(dataset)
    model = _attach(HogRFLitModule(hog=HOG, num_trees=5, num_jobs=1), dm)
    assert model.neutral_mode == "subtract"
    feats = np.ones((2, 96))  # 3 x 4 cells of 8 orientations
    out = model.normalise(feats, ["m01/s01", "m02/s01"])
    np.testing.assert_allclose(out, feats - np.stack([model.neutrals["m01/s01"], model.neutrals["m02/s01"]]))
    with pytest.raises(ConfigError, match="neutral must be one of"):
        HogRFLitModule(neutral="own")


def test_a_session_without_prestimulus_frames_falls_back_to_its_reference(tmp_path):
    root = tmp_path / "ds"
    write_session(root, animal="m01", seed=1, num_frames=80)
    path = write_session(root, animal="m02", seed=2, num_frames=80)
    # a stimulus from the first frame on: no baseline before it
    rows = (path / "events.csv").read_text().splitlines()
    rows[1] = rows[1].replace("neutral", "pleasure")
    (path / "events.csv").write_text("\n".join(rows) + "\n")
    dm = _datamodule(root)
    model = _attach(HogProtoLitModule(hog=HOG, neutral_frames=40), dm)
    with pytest.warns(UserWarning, match=r"session m02/s01 .*no frame before its first stimulus.*reference"):
        model._ensure_neutrals()
    assert model.neutral_sources == {"m01/s01": "pre-stimulus (20 frames)", "m02/s01": "reference"}
    frames = np.load(next(sf.cache_path for sf in dm.sessions if sf.name == "m02/s01"))
    np.testing.assert_allclose(
        model.neutrals["m02/s01"], _hog_mean(session_reference(frames, 40)[None]), atol=1e-5
    )
    # no events.csv at all: the same fallback, with its own reason
    (path / "events.csv").unlink()
    model = _attach(HogProtoLitModule(hog=HOG), _datamodule(root))
    with pytest.warns(UserWarning, match=r"session m02/s01 .*has no events.csv"):
        model._ensure_neutrals()


def test_the_paper_variant_reads_full_resolution_crops(dataset):
    dm = _datamodule(dataset, image_size=(24, 32))  # the networks' frames are small
    model = _attach(HogProtoLitModule(hog={"pixels_per_cell": [32, 32]}, resolution="native"), dm)
    batch = next(iter(dm.test_dataloader()))
    assert tuple(batch["image"].shape[-2:]) == (24, 32)
    images = model.images(batch)
    assert tuple(images.shape) == (len(batch["frame"]), 1, 48, 64)  # the 48 x 64 video, uncropped
    sf = next(sf for sf in dm.sessions if sf.name == f"{batch['animal'][0]}/{batch['session'][0]}")
    native = model._session_frames(dm, sf)
    assert native.shape[1:] == (48, 64)
    np.testing.assert_array_equal(images[0, 0].numpy(), native[int(batch["frame"][0])])
    with pytest.raises(ConfigError, match="resolution must be one of"):
        HogProtoLitModule(resolution="full")
