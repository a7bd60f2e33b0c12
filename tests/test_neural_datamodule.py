"""Face + neural windows on a small synthetic session (real Suite2p folder and timestamps on disk)."""

import numpy as np
import pytest

from mouseemo.data.neural_datamodule import FaceNeuralDataModule
from mouseemo.data.sync import read_timestamps
from mouseemo.errors import ConfigError, DataError
from tests.helpers import synthetic_world


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    return synthetic_world(
        tmp_path_factory, "synth", num_mice=1, minutes=1.0, seed=3, size=(96, 128), num_neurons=40
    )


def test_windows_shapes_and_alignment(synth_root, tmp_path):
    dm = FaceNeuralDataModule(
        str(synth_root),
        window=6,
        window_stride=3,
        image_size=(24, 32),
        batch_size=5,
        output_dir=str(tmp_path),
        min_overlap_s=5.0,
    )
    dm.prepare_data()
    dm.setup()
    assert dm.num_neurons > 20  # iscell filter keeps most of the 40 ROIs
    batch = next(iter(dm.train_dataloader()))
    assert batch["frames"].shape == (5, 6, 1, 24, 32) and batch["frames"].dtype.is_floating_point is False
    assert batch["neural"].shape == (5, 6, dm.num_neurons)
    assert np.isfinite(batch["neural"].numpy()).all()
    dt = np.diff(batch["t_cam"].numpy(), axis=1)
    assert (dt > 0).all() and (dt < 0.2).all()  # consecutive frames (a dropped frame is at most 2/fps)
    # every window lies inside the imaging span
    t_img = read_timestamps(synth_root / "m01" / "s01" / "imaging_timestamps.csv")
    for stage in ("train", "val", "test"):
        ds = dm.datasets[stage]
        starts = ds.index[:, 1]
        t = ds.times[0]
        assert (t[starts] >= t_img[0]).all() and (t[starts + 5] <= t_img[-1]).all()
    # z-scored on training frames: mean ~0 and sd ~1 there
    act = dm.activity[0]
    train = act.valid & dm.masks["m01/s01"]["train"]
    assert abs(float(act.neural[train].mean())) < 1e-3
    assert abs(float(act.neural[train].std(0).mean()) - 1) < 0.05
    assert (tmp_path / "splits.json").is_file()


def test_lag_shifts_activity(synth_root):
    kw = dict(window=4, image_size=(24, 32), zscore=False, min_overlap_s=5.0)
    a = FaceNeuralDataModule(str(synth_root), lag_s=0.0, **kw)
    b = FaceNeuralDataModule(str(synth_root), lag_s=0.5, **kw)
    for dm in (a, b):
        dm.prepare_data()
        dm.setup()
    # with lag L, frame i is paired with the activity recorded at imaging time t_i - L
    from mouseemo.data.imaging import load_activity

    act = load_activity(synth_root / "m01" / "s01", signal="dff", fs=15.0)
    t = a.sessions[0].times
    i = np.flatnonzero(b.activity[0].valid)[100]
    expected = np.array([np.interp(t[i] - 0.5, act.t, tr) for tr in act.traces])
    np.testing.assert_allclose(b.activity[0].neural[i], expected, rtol=1e-4, atol=1e-5)
    expected0 = np.array([np.interp(t[i], act.t, tr) for tr in act.traces])
    np.testing.assert_allclose(a.activity[0].neural[i], expected0, rtol=1e-4, atol=1e-5)
    assert not np.allclose(expected, expected0)


def test_errors(synth_root, tmp_path):
    with pytest.raises(ConfigError):
        FaceNeuralDataModule(str(synth_root), window=0)
    dm = FaceNeuralDataModule(str(synth_root), lag_s=1e4, image_size=(24, 32))
    dm.prepare_data()
    with pytest.raises(DataError, match="do not overlap"):
        dm.setup()


def test_existing_synthetic_data_with_other_parameters_warns(synth_root):
    from mouseemo.data.face_datamodule import ensure_dataset

    with pytest.warns(UserWarning, match="other parameters"):
        sessions = ensure_dataset(synth_root, {"num_mice": 2, "minutes": 1.0, "seed": 3})
    assert len(sessions) == 1  # reused, not regenerated
