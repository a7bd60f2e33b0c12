"""Face-free rules (timing, pixel change) and the trial-permutation label control."""

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from mouseemo.data.face_datamodule import FaceFramesDataModule
from mouseemo.data.label_controls import control_kind, permute_trial_labels
from mouseemo.data.tail_shock import build_tail_shock_sessions
from mouseemo.data.trials import Trials, read_trials
from mouseemo.errors import ConfigError, DataError
from mouseemo.models.rule_module import FaceFreeRuleModule, fit_interval

FPS = 20.0


def moving_mouse(root: Path, name: str, currents=(0, 500, 0, 500), frames: int = 20, seed: int = 0) -> Path:
    """A tail-shock mouse folder whose shock clips show a bright patch in their pain window
    (``events.csv``: 0.4 s to 0.8 s, frames 8 to 15) and whose sham clips stay still."""
    rng = np.random.default_rng(seed)
    d = Path(root) / name
    d.mkdir(parents=True)
    lines = ["clip,current_uA"]
    for i, c in enumerate(currents):
        clip = f"c{i}.mp4"
        vw = cv2.VideoWriter(str(d / clip), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (48, 32), True)
        base = rng.integers(60, 120, (32, 48)).astype(np.uint8)
        base = cv2.GaussianBlur(base, (7, 7), 0)
        for f in range(frames):
            img = base.copy()
            if c > 0 and 8 <= f < 16:
                img[8:24, 10:34] = 230
            vw.write(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
        vw.release()
        lines.append(f"{clip},{c}")
    (d / "trials.csv").write_text("\n".join(lines) + "\n")
    (d / "events.csv").write_text("onset,duration,label\n0.40,0.4,pain\n")
    return d


@pytest.fixture(scope="module")
def moving_sessions(tmp_path_factory):
    root = tmp_path_factory.mktemp("moving")
    for k, name in enumerate(("m1", "m2", "m3")):
        moving_mouse(root / "src", name, seed=k)
    build_tail_shock_sessions(root / "src", root / "data", currents=(0, 500))
    return root / "data"


def test_fit_interval_finds_the_window_and_the_threshold():
    t = np.arange(100) / 20.0
    inside = (t >= 2.0) & (t < 4.0)
    low, high, f1 = fit_interval(t, inside)
    assert (low, f1) == (2.0, 1.0) and 3.95 < high <= 4.0
    x = np.r_[np.zeros(30), np.ones(10)]  # a threshold: everything above
    low, high, f1 = fit_interval(x, x > 0.5)
    assert low == 1.0 and high == np.inf and f1 == 1.0
    # with overlap the best interval is not perfect, and its macro-F1 is the one of its calls
    x = np.r_[np.arange(10), np.arange(5, 15)].astype(float)
    y = np.r_[np.zeros(10, bool), np.ones(10, bool)]
    low, high, f1 = fit_interval(x, y)
    pred = (x >= low) & (x < high)
    tp, fp, fn, tn = (pred & y).sum(), (pred & ~y).sum(), (~pred & y).sum(), (~pred & ~y).sum()
    assert f1 == pytest.approx((2 * tp / (2 * tp + fp + fn) + 2 * tn / (2 * tn + fn + fp)) / 2)
    assert 0.7 < f1 < 1.0
    with pytest.raises(DataError, match="NaN"):
        fit_interval(np.array([0.0, np.nan]), np.array([True, False]))


def test_permute_keeps_phase_and_moves_labels_with_their_trial():
    times = np.arange(50) / 10.0  # 5 trials of 1 s, then nothing
    tr = Trials(np.arange(4.0), np.ones(4), np.arange(4.0) + 0.3)
    labels = np.zeros(50, np.int64)
    labels[13:16] = 1  # trial 1 has its stimulus window at 0.3-0.6 s
    labels[35:38] = 1  # trial 3 too
    labels[45] = 1  # outside every trial: stays
    seen = set()
    for seed in range(20):
        out, perm = permute_trial_labels(labels, times, tr, np.random.default_rng(seed))
        assert sorted(perm) == [0, 1, 2, 3]
        for k in range(4):
            np.testing.assert_array_equal(out[10 * k : 10 * k + 10], labels[10 * perm[k] : 10 * perm[k] + 10])
        assert out[45] == 1 and out[40:].sum() == 1
        seen.add(tuple(np.flatnonzero(out[:40])))
    assert len(seen) > 3  # which trials carry the window changes from draw to draw


def test_control_kind():
    assert (
        control_kind(False) is None and control_kind(True) == "shift" and control_kind("permute") == "permute"
    )
    with pytest.raises(ConfigError, match="shuffle_train_labels"):
        control_kind("sideways")


def _dm(root, **kw):
    dm = FaceFramesDataModule(
        str(root), label_source="events", outside="neutral", classes=["neutral", "pain"],
        image_size=None, split={"fold": 0, "val_animals": 0}, **kw,
    )  # fmt: skip
    dm.setup()
    return dm


def test_datamodule_permute_control(moving_sessions):
    real = _dm(moving_sessions).datasets["train"].labels
    draws = [
        _dm(moving_sessions, shuffle_train_labels="permute", control_draw=d).datasets["train"].labels
        for d in range(4)
    ]
    again = _dm(moving_sessions, shuffle_train_labels="permute", control_draw=0).datasets["train"].labels
    np.testing.assert_array_equal(draws[0], again)  # a draw is reproducible
    assert len({d.tobytes() for d in draws}) > 1  # and draws differ
    for d in draws:  # same number of pain frames, at the same phase (frames 8-15 of a 20-frame trial)
        assert d.sum() == real.sum()
        pain_phase = np.flatnonzero(d) % 20
        assert set(pain_phase) == set(range(8, 16))
    assert any((d != real).any() for d in draws)


def test_rule_needs_two_classes_and_known_settings():
    with pytest.raises(ConfigError, match="two classes"):
        FaceFreeRuleModule(classes=["neutral", "pain", "fear"])
    with pytest.raises(ConfigError, match="model.rule"):
        FaceFreeRuleModule(rule="vibes")
    with pytest.raises(ConfigError, match="model.clock"):
        FaceFreeRuleModule(rule="timing", clock="moon")


@pytest.mark.slow
def test_face_free_rows_in_the_benchmark(moving_sessions, tmp_path):
    from mouseemo.hydra_entry import run

    models = ["timing", "timing_phase", "pixel_change_trial", "pixel_change_session"]
    code = run(
        "evaluate",
        [
            "experiment=tail_shock", f"data.root={moving_sessions}", f"paths.log_dir={tmp_path / 'logs'}",
            f"benchmark.models=[{','.join(models)}]", "benchmark.folds=[0]", "logger=none",
            "data.image_size=null", "benchmark.controls=[shift,permute]", "benchmark.control_draws=2",
            "benchmark.tracks={stimulus_locked:[timing,timing_phase,pixel_change_trial],log_free:[pixel_change_session]}",
        ],
    )  # fmt: skip
    assert code == 0
    (csv_path,) = (tmp_path / "logs").rglob("benchmark.csv")
    rows = {r["model"]: r for r in csv.DictReader(csv_path.open())}
    f1 = {m: float(rows[m]["macro_f1"]) for m in models}
    assert f1["timing"] == 1.0  # the labels are the log's windows
    # the phase alone calls the sham trials' windows pain too: 2 of 4 trials, so clearly below 1
    assert 0.6 < f1["timing_phase"] < 0.9
    assert f1["pixel_change_trial"] > 0.95 and f1["pixel_change_session"] > 0.9
    assert rows["pixel_change_session"]["track"] == "log_free"
    # at the stimulus phase of every trial the phase says nothing (it calls all of them pain: pain F1
    # 2/3, neutral F1 0); the pixel change still tells the shock trials from the sham ones
    window = {m: float(rows[m]["window_macro_f1"]) for m in models}
    assert window["timing_phase"] == pytest.approx(1 / 3, abs=1e-3)
    assert window["pixel_change_trial"] > 0.95 and window["timing"] == 1.0
    assert int(rows["timing"]["permute_draws"]) == 2
    md = next((tmp_path / "logs").rglob("benchmark.md")).read_text()
    assert md.index("Stimulus-locked track") < md.index("Log-free track")
    jobs = list(csv.DictReader(next((tmp_path / "logs").rglob("benchmark_jobs.csv")).open()))
    assert sorted({(j["control"], j["draw"]) for j in jobs}) == [
        ("", "0"), ("permute", "0"), ("permute", "1"), ("shift", "0")
    ]  # fmt: skip


def test_log_free_track_refuses_a_stimulus_locked_model(moving_sessions, tmp_path):
    from mouseemo.hydra_entry import run

    code = run(
        "evaluate",
        [
            "experiment=tail_shock", f"data.root={moving_sessions}", f"paths.log_dir={tmp_path / 'logs'}",
            "benchmark.models=[pixel_change_trial]", "benchmark.folds=[0]", "logger=none",
            "benchmark.tracks={log_free:[pixel_change_trial]}",
        ],
    )  # fmt: skip
    assert code == 2


def test_built_trials_are_read(moving_sessions):
    tr = read_trials(moving_sessions / "m1" / "tail_shock" / "trials.csv")
    assert len(tr) == 4


def test_checkpoints_record_the_sessions_crop(tmp_path):
    """A model trained on sessions cropped by their session.json records that crop, so a plain video
    scored later is cropped the same way; an explicit data.crop=none records the whole frame."""
    from types import SimpleNamespace

    from mouseemo.models.checkpoint import RECORD_KEY, RecordConfig

    moving_mouse(tmp_path / "src", "m1")
    moving_mouse(tmp_path / "src", "m2", seed=1)
    build_tail_shock_sessions(tmp_path / "src", tmp_path / "data", currents=(0, 500), crop=(4, 2, 40, 28))
    for crop, recorded in ((None, [4, 2, 40, 28]), ("none", "none"), ("0,0,16,16", "0,0,16,16")):
        dm = _dm(tmp_path / "data", crop=crop)
        ckpt = {}
        RecordConfig({"data": {"crop": crop}}).on_save_checkpoint(SimpleNamespace(datamodule=dm), None, ckpt)
        assert ckpt[RECORD_KEY]["data"]["crop"] == recorded
        assert dm.frames_crop() == {None: (4, 2, 40, 28), "none": None}.get(crop, (0, 0, 16, 16))
        size = dm.datasets["train"][0]["image"].shape[-2:]
        assert tuple(size) == ((28, 40) if crop is None else (32, 48) if crop == "none" else (16, 16))


def test_permute_control_without_trials_stops_before_any_job(tmp_path):
    from mouseemo.hydra_entry import run

    root = tmp_path / "synthetic"
    code = run(
        "evaluate",
        [
            "experiment=benchmark", f"data.root={root}", f"paths.log_dir={tmp_path / 'logs'}", "logger=none",
            "+data.synthesize={num_mice:2,minutes:0.2,seed:3}", "benchmark.models=[cnn]",
            "benchmark.controls=[permute]", "benchmark.label_sources=[events]",
        ],
    )  # fmt: skip
    assert code == 2
    assert not list((tmp_path / "logs").rglob("metrics.json"))  # no job ran
