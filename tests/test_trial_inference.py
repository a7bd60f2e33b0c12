"""Trial-locked checkpoints (reference=trial) on new videos: predict and live reproduce training."""

import csv
import shutil
import sys
import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mouseemo.cli import main
from mouseemo.data.face_datamodule import FaceFramesDataModule, FrameDataset
from mouseemo.data.trials import read_trials, trials_from_onsets
from mouseemo.data.video import VideoReader
from mouseemo.errors import ConfigError, DataError
from mouseemo.inference.live import Every, IterableSource, LiveOptions, LiveSession
from mouseemo.inference.scorers import load_scorer
from mouseemo.models.checkpoint import RECORD_KEY, RecordConfig, load_model
from mouseemo.testing import untrained_checkpoint, write_session

FPS = 20.0
BASELINE_S = 0.5
ONSETS = [1.5, 3.0, 4.5]  # stimulus onsets; frames before 1.0 s are in no trial
TRIALS = "onset,duration,trigger\n1.0,1.5,1.5\n2.5,1.5,3.0\n4.0,2.0,4.5\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("trial_world")
    sess = write_session(root / "data", num_frames=120, fps=FPS, seed=3)
    (sess / "trials.csv").write_text(TRIALS)
    ckpt = untrained_checkpoint(root / "ckpt" / "trial_cnn.ckpt", "trial_cnn", ["seed=1"])
    state = torch.load(ckpt, weights_only=True)
    state[RECORD_KEY]["data"]["trial_baseline_s"] = BASELINE_S  # as training on this trials.csv records
    head = [k for k, v in state["state_dict"].items() if v.ndim == 2][-1]
    state["state_dict"][head] *= 300.0  # random weights give near-uniform probabilities: spread them
    torch.save(state, ckpt)
    onsets = root / "onsets.csv"
    onsets.write_text("onset,duration,label\n" + "".join(f"{t},0.5,pain\n" for t in ONSETS))
    return SimpleNamespace(root=root, session=sess, ckpt=ckpt, onsets=onsets)


def _scores(path):
    rows = list(csv.DictReader(open(path)))
    return np.array([[float(v) for k, v in r.items() if k.startswith("prob_")] for r in rows])


def _training_scores(world):
    """The model on the datamodule's own items (frame + its trial reference), as in training."""
    dm = FaceFramesDataModule(
        str(world.root / "data"), label_source="events", outside="neutral", image_size=[72, 96],
        reference="trial", split={"kind": "time", "gap_s": 0.0}, cache_dir=str(world.root / "cache"),
    )  # fmt: skip
    dm.setup()
    (s,) = dm.sessions
    n = len(s.times)
    ds = FrameDataset([s], np.stack([np.zeros(n, np.int64), np.arange(n)], 1), s.labels)
    items = [ds[i] for i in range(n)]
    batch = {k: torch.stack([it[k] for it in items]) for k in ("image", "reference")}
    module = load_model(world.ckpt).module
    with torch.inference_mode():
        return module.predict_step(module.on_after_batch_transfer(batch, 0), 0).float().numpy()


def _predict(world, out, *extra):
    args = ["predict", *extra, "--ckpt", str(world.ckpt), "--out", str(out), "--no-plot", "--quiet"]
    assert main(args) == 0


def test_predict_equals_the_model_on_training_items(world, tmp_path):
    expected = _training_scores(world)
    _predict(world, tmp_path / "a", str(world.session))  # the session's trials.csv
    got = _scores(tmp_path / "a" / "m01_s01.csv")
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # references really differ: the session reference alone gives other scores in the trials
    scorer = load_scorer(None, world.ckpt, "cpu")
    with VideoReader(world.session / "face.mp4") as vr:
        scorer = scorer.for_video(vr, trials=read_trials(world.session / "trials.csv"))
        x = torch.from_numpy(scorer.prepare(vr.read()))
    alone = scorer._run(x).numpy()
    assert np.allclose(alone[:20], expected[:20], atol=1e-5)  # in no trial: the session reference
    assert np.abs(alone[20:] - expected[20:]).max() > 100 * 1e-5
    # onsets alone (an events file) give the same trials with the recorded window
    video = tmp_path / "v" / "face.mp4"
    video.parent.mkdir()
    shutil.copy(world.session / "face.mp4", video)
    shutil.copy(world.session / "face_timestamps.csv", video.parent)
    _predict(world, tmp_path / "b", str(video), "--events", str(world.onsets))
    np.testing.assert_allclose(_scores(tmp_path / "b" / "face.csv"), expected, atol=1e-5)
    _predict(world, tmp_path / "c", str(video), "--events", str(world.session / "trials.csv"))
    np.testing.assert_allclose(_scores(tmp_path / "c" / "face.csv"), expected, atol=1e-5)


def test_missing_and_bad_onsets(world, tmp_path, capsys):
    video = tmp_path / "face.mp4"
    shutil.copy(world.session / "face.mp4", video)
    args = ["predict", str(video), "--ckpt", str(world.ckpt), "--out", str(tmp_path / "o"), "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--events" in err and "trial-locked" in err
    for text, match in [
        ("onset,duration,label\n9.0,0.5,pain\n", "outside"),
        ("onset,duration,label\n3.0,0.5,pain\n1.5,0.5,pain\n", "increase"),
        ("onset,duration,label\n1.5,0.5,pain\n1.7,0.5,pain\n", "closer"),
    ]:
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        assert main([*args, "--events", str(bad)]) == 2
        assert match in capsys.readouterr().err
    with pytest.raises(DataError, match="finite"):
        trials_from_onsets([1.0, float("nan")], 0.5)
    # a trials file for a model that reads events.csv only
    plain = untrained_checkpoint(tmp_path / "cnn.ckpt", "cnn")
    code = main(["predict", str(video), "--ckpt", str(plain), "--out", str(tmp_path / "p"), "--quiet",
                 "--events", str(world.session / "trials.csv")])  # fmt: skip
    assert code == 2 and "trials file" in capsys.readouterr().err


def test_checkpoint_without_a_recorded_window(world, tmp_path):
    state = torch.load(world.ckpt, weights_only=True)
    del state[RECORD_KEY]["data"]["trial_baseline_s"]
    old = tmp_path / "old.ckpt"
    torch.save(state, old)
    scorer = load_scorer(None, old, "cpu")
    with pytest.raises(ConfigError, match="pre-stimulus window"):
        scorer.schedule(None, SimpleNamespace(onset=ONSETS, label=["pain"] * 3, source="x"), "v")


def test_record_config_records_the_trial_window(world):
    cb = RecordConfig({"data": {"reference": "trial"}})
    frames = SimpleNamespace(session=SimpleNamespace(path=world.session))
    trainer = SimpleNamespace(datamodule=SimpleNamespace(sessions=[frames]))
    ckpt = {}
    cb.on_save_checkpoint(trainer, None, ckpt)
    assert ckpt[RECORD_KEY]["data"]["trial_baseline_s"] == pytest.approx(BASELINE_S)


def _live(world, opts, fire=None):
    """Live over the session's frames at their video times; ``fire``: onsets sent by trigger()."""
    with VideoReader(world.session / "face.mp4") as vr:
        frames = vr.read()
    times = np.arange(len(frames)) / FPS
    scorer = load_scorer(None, world.ckpt, "cpu")
    rows = []
    holder = {}

    def pairs():
        for t, f in zip(times, frames):
            if fire is not None and any(abs(t - o) < 1e-9 for o in fire):
                holder["session"].trigger(t)  # a hardware trigger arriving with the frame
            yield float(t), f

    opts = LiveOptions(reference=frames, drop=False, status_s=None, **opts)
    session = LiveSession(IterableSource(pairs(), fps=FPS), scorer, opts, callbacks=[rows.append])
    holder["session"] = session
    summary = session.run()
    assert summary["frames"]["scored"] == len(frames)
    assert [r.index for r in rows] == list(range(len(frames)))
    return np.stack([r.scores for r in rows])


def test_live_schedule_and_triggers_equal_predict(world, tmp_path):
    _predict(world, tmp_path, str(world.session))
    expected = _scores(tmp_path / "m01_s01.csv")
    np.testing.assert_allclose(_live(world, {"onsets": ONSETS}), expected, atol=1e-5)
    np.testing.assert_allclose(_live(world, {}, fire=ONSETS), expected, atol=1e-5)
    # every 1.5 s from 1.5 s: the same trials, and one at 6.0 s whose window the video ends in
    periodic = _live(world, {"onsets": Every(1.5, first=1.5)})
    np.testing.assert_allclose(periodic[:110], expected[:110], atol=1e-5)


def test_live_trigger_from_another_thread_and_errors(world):
    scorer = load_scorer(None, world.ckpt, "cpu")
    session = LiveSession(IterableSource([]), scorer, LiveOptions(status_s=None))
    threading.Thread(target=session.trigger, args=(1.0,)).start()
    with pytest.raises(DataError, match="closer"):
        LiveSession(IterableSource([]), scorer, LiveOptions(onsets=[2.0, 2.2]))
    fixed = LiveSession(IterableSource([]), scorer, LiveOptions(onsets=[2.0]))
    with pytest.raises(ConfigError, match="schedule"):
        fixed.trigger(3.0)


def test_live_command_onset_flags(world, tmp_path, capsys, monkeypatch):
    base = ["live", "--video", str(world.session / "face.mp4"), "--ckpt", str(world.ckpt), "--quiet",
            "--as-fast-as-possible", "--no-drop", "--reference-s", "1"]  # fmt: skip
    assert main(base) == 2
    err = capsys.readouterr().err
    assert "--onsets" in err and "--every" in err and "trial-locked" in err
    monkeypatch.setitem(sys.modules, "pylsl", None)  # import fails
    assert main([*base, "--lsl-markers", "stim"]) == 2
    assert "--lsl-markers needs pylsl" in capsys.readouterr().err
    assert main([*base, "--onsets", "1.5,x"]) == 2
    assert "--onsets" in capsys.readouterr().err
    plain = untrained_checkpoint(tmp_path / "cnn.ckpt", "cnn")
    code = main(["live", "--video", str(world.session / "face.mp4"), "--ckpt", str(plain), "--every", "2"])
    assert code == 2 and "trial-locked" in capsys.readouterr().err
    out = tmp_path / "live.csv"
    assert main([*base, "--every", "1.5", "--first", "1.5", "--csv", str(out)]) == 0
    assert len(list(csv.DictReader(open(out)))) == 120


def test_a_clip_table_beside_a_video_is_no_trial_table(tmp_path):
    """A folder of trial clips holds a trials.csv listing its clips (clip,current_uA): a plain video
    there takes no onsets from it, while a table of trials (onset,duration,trigger) is used."""
    from mouseemo.inference.inputs import _trials_beside

    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    (tmp_path / "trials.csv").write_text("clip,current_uA\nclip.mp4,500\n")
    assert _trials_beside(video, only_trial_tables=True) is None
    assert _trials_beside(video) == tmp_path / "trials.csv"  # a session's own trials.csv is always read
    (tmp_path / "trials.csv").write_text("onset,duration,trigger\n0,5,2\n")
    assert _trials_beside(video, only_trial_tables=True) == tmp_path / "trials.csv"
