"""The synthetic world: session-folder contract, determinism, ground-truth semantics, CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from mouseemo.cli import main
from mouseemo.constants import EMOTIONS
from mouseemo.data.synthetic import SynthConfig, dynamics, generate_dataset, generate_session
from mouseemo.data.synthetic.camera import camera_clock
from mouseemo.data.synthetic.face import FaceRenderer
from mouseemo.data.synthetic.identity import DEFAULT_IDENTITY
from mouseemo.data.synthetic.schedule import build_schedule
from mouseemo.errors import ConfigError, DataError

SMALL = dict(size=(96, 128), num_neurons=30, minutes=0.25)


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _decode(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


@pytest.fixture(scope="module")
def session3(tmp_path_factory) -> Path:
    """One mouse, 3 minutes, every other parameter at its default."""
    root = tmp_path_factory.mktemp("synth3")
    paths = generate_dataset(root, num_mice=1, minutes=3.0, seed=0)
    assert paths == [root / "m01" / "s01"]
    return paths[0]


@pytest.fixture(scope="module")
def video3(session3) -> dict:
    """Decode the 3-minute video once: frame count, channel agreement, mean image per label."""
    labels = [r["label"] for r in _csv(session3 / "truth" / "frames.csv")]
    cap = cv2.VideoCapture(str(session3 / "face.mp4"))
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    neutral_frames = []
    num, max_channel_diff, shape = 0, 0, None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        shape = frame.shape
        if num % 50 == 0:
            max_channel_diff = max(
                max_channel_diff, int(np.abs(frame[..., 0].astype(int) - frame[..., 2]).max())
            )
        gray = frame[..., 0].astype(np.float64)
        lab = labels[num] if num < len(labels) else "?"
        sums[lab] = sums.get(lab, 0.0) + gray
        counts[lab] = counts.get(lab, 0) + 1
        if lab == "neutral" and num % 20 == 0:
            neutral_frames.append(gray)
        num += 1
    cap.release()
    means = {k: sums[k] / counts[k] for k in sums}
    return {
        "num": num,
        "shape": shape,
        "channel_diff": max_channel_diff,
        "means": means,
        "neutral": neutral_frames,
    }


def test_counts_match_across_files(session3, video3):
    stamps = _csv(session3 / "face_timestamps.csv")
    truth = _csv(session3 / "truth" / "frames.csv")
    meta = json.loads((session3 / "session.json").read_text())
    assert video3["num"] == len(stamps) == len(truth) == meta["num_frames"]
    assert video3["shape"] == (240, 320, 3)
    # grayscale-looking: the three channels agree up to codec rounding
    assert video3["channel_diff"] <= 8
    F = np.load(session3 / "suite2p" / "plane0" / "F.npy")
    img_stamps = _csv(session3 / "imaging_timestamps.csv")
    assert F.shape == (200, len(img_stamps))
    ops = np.load(session3 / "suite2p" / "plane0" / "ops.npy", allow_pickle=True).item()
    assert ops["nframes"] == len(img_stamps) and ops["fs"] == 15.0


def test_camera_clock_has_dropped_frames_as_gaps(session3):
    t = np.array([float(r["time_s"]) for r in _csv(session3 / "face_timestamps.csv")])
    dt = np.diff(t)
    assert np.all(dt > 0)
    assert np.median(dt) == pytest.approx(0.05, abs=1e-3)
    gaps = dt[dt > 1.5 / 20]
    meta = json.loads((session3 / "session.json").read_text())
    assert len(gaps) == meta["params"]["num_dropped_frames"] > 0
    assert np.allclose(gaps, 0.1, atol=0.01)
    truth_t = [float(r["time_s"]) for r in _csv(session3 / "truth" / "frames.csv")]
    assert np.array_equal(t, truth_t)


def test_all_labels_present_and_events_well_formed(session3):
    truth = _csv(session3 / "truth" / "frames.csv")
    assert {r["label"] for r in truth} == set(EMOTIONS)
    events = _csv(session3 / "events.csv")
    assert list(events[0]) == ["onset", "duration", "label", "value"]
    assert {e["label"] for e in events} == set(EMOTIONS)
    first = events[0]
    assert first["label"] == "neutral" and float(first["onset"]) == 0.0
    sucrose = {e["value"] for e in events if e["label"] == "pleasure"}
    assert {"4", "20"} <= sucrose
    duration = json.loads((session3 / "session.json").read_text())["params"]["duration_s"]
    for e in events:
        assert e["label"] in EMOTIONS
        assert 0.0 <= float(e["onset"]) and float(e["onset"]) + float(e["duration"]) <= duration + 1e-6


def test_labels_follow_intensity_threshold(session3):
    truth = _csv(session3 / "truth" / "frames.csv")
    states = EMOTIONS[1:]
    for r in truth[::7]:
        inten = np.array([float(r[f"intensity_{s}"]) for s in states])
        expected = states[int(np.argmax(inten))] if inten.max() >= 0.5 else "neutral"
        if abs(inten.max() - 0.5) > 1e-3:  # values in the CSV are rounded
            assert r["label"] == expected


def test_session_json_contract(session3):
    meta = json.loads((session3 / "session.json").read_text())
    for key in (
        "animal",
        "session",
        "fps",
        "imaging_fs",
        "num_frames",
        "size",
        "synthetic",
        "seed",
        "params",
        "notes",
    ):
        assert key in meta
    assert meta["animal"] == "m01" and meta["session"] == "s01" and meta["synthetic"] is True
    assert meta["size"] == [240, 320]
    assert meta["params"]["nuisance"] == "medium"
    assert "fur_level" in meta["params"]["identity"]
    manifest = _csv(session3.parent.parent / "manifest.csv")
    assert manifest == [{"animal": "m01", "session": "s01", "path": "m01/s01"}]


@pytest.mark.parametrize(
    ("emotion", "au", "sign"),
    [
        ("pain", "eye_open", -1),
        ("pain", "ear_angle", +1),
        ("pain", "nose_bulge", +1),
        ("pleasure", "ear_angle", -1),
        ("pleasure", "nose_pos", +1),
        ("disgust", "ear_pos", +1),
        ("disgust", "jaw_open", +1),
        ("malaise", "eye_open", -1),
        ("malaise", "whisk_amp", -1),
        ("passive_fear", "whisk_amp", -1),
        ("passive_fear", "whisker_angle", +1),
        ("active_fear", "whisk_amp", +1),
        ("active_fear", "eye_open", +1),
    ],
)
def test_emotion_frames_move_action_units_in_the_documented_direction(session3, emotion, au, sign):
    truth = _csv(session3 / "truth" / "frames.csv")
    emo = np.array([float(r[au]) for r in truth if r["label"] == emotion])
    neutral = np.array([float(r[au]) for r in truth if r["label"] == "neutral"])
    assert sign * (emo.mean() - neutral.mean()) > 0.1


def test_emotion_frames_look_different_from_neutral(video3):
    neutral_mean = video3["means"]["neutral"]
    # neutral frames vary (whisking, blinks, camera) less than emotion frames differ from them
    spread = np.mean([np.abs(f - neutral_mean).mean() for f in video3["neutral"]])
    for emotion in ("pain", "disgust", "malaise"):
        diff = np.abs(video3["means"][emotion] - neutral_mean).mean()
        assert diff > 0.1 * spread, emotion


def test_selective_neurons_track_their_emotion(session3):
    F = np.load(session3 / "suite2p" / "plane0" / "F.npy")
    t_img = np.array([float(r["time_s"]) for r in _csv(session3 / "imaging_timestamps.csv")])
    truth = _csv(session3 / "truth" / "frames.csv")
    t_cam = np.array([float(r["time_s"]) for r in truth])
    neurons = _csv(session3 / "truth" / "neurons.csv")
    assert {"neuron", "preferred", "gain", "baseline", "is_cell"} <= set(neurons[0])
    assert {n["preferred"] for n in neurons} >= set(EMOTIONS[1:]) | {"mixed", "movement", "none"}
    assert any(n["is_cell"] == "0" for n in neurons)
    for emotion in ("pleasure", "pain", "passive_fear"):
        inten = np.interp(t_img, t_cam, [float(r[f"intensity_{emotion}"]) for r in truth])
        corr = np.array([np.corrcoef(f, inten)[0, 1] for f in F])
        sel = [i for i, n in enumerate(neurons) if n["preferred"] == emotion]
        untuned = [i for i, n in enumerate(neurons) if n["preferred"] == "none" and n["is_cell"] == "1"]
        assert np.mean(corr[sel]) > np.mean(corr[untuned]) + 0.2, emotion


def test_suite2p_files_load_like_real_output(session3):
    plane = session3 / "suite2p" / "plane0"
    F, Fneu, spks = (np.load(plane / f"{n}.npy") for n in ("F", "Fneu", "spks"))
    assert F.dtype == Fneu.dtype == spks.dtype == np.float32
    assert F.shape == Fneu.shape == spks.shape
    assert np.all(spks >= 0) and np.isfinite(F).all()
    iscell = np.load(plane / "iscell.npy")
    assert iscell.dtype == np.float64 and iscell.shape == (F.shape[0], 2)
    assert set(np.unique(iscell[:, 0])) == {0.0, 1.0}
    with pytest.raises(ValueError):
        np.load(plane / "stat.npy")  # object arrays need allow_pickle, as with real Suite2p output
    stat = np.load(plane / "stat.npy", allow_pickle=True)
    ops = np.load(plane / "ops.npy", allow_pickle=True).item()
    assert len(stat) == F.shape[0]
    assert ops["meanImg"].dtype == np.float32 and ops["meanImg"].shape == (ops["Ly"], ops["Lx"])
    for st in stat[:20]:
        assert st["ypix"].dtype.kind == "i" and st["lam"].dtype == np.float32
        assert len(st["ypix"]) == len(st["xpix"]) == len(st["lam"]) == st["npix"] > 0
        assert st["ypix"].max() < ops["Ly"] and st["xpix"].max() < ops["Lx"]
    # neuropil leaks into F: F and Fneu share the slow signal
    assert np.corrcoef(F.mean(0), Fneu.mean(0))[0, 1] > 0.3


def test_same_seed_same_files_different_seed_different(tmp_path):
    a = generate_dataset(tmp_path / "a", num_mice=1, seed=1, **SMALL)[0]
    b = generate_dataset(tmp_path / "b", num_mice=1, seed=1, **SMALL)[0]
    c = generate_dataset(tmp_path / "c", num_mice=1, seed=2, **SMALL)[0]
    for rel in ("truth/frames.csv", "events.csv", "suite2p/plane0/F.npy", "imaging_timestamps.csv"):
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert (a / "truth/frames.csv").read_bytes() != (c / "truth/frames.csv").read_bytes()
    assert (a / "suite2p/plane0/F.npy").read_bytes() != (c / "suite2p/plane0/F.npy").read_bytes()
    fa, fb = _decode(a / "face.mp4"), _decode(b / "face.mp4")
    assert len(fa) == len(fb) and all(np.array_equal(x, y) for x, y in zip(fa, fb, strict=True))


def test_parallel_workers_give_the_same_data_and_distinct_animals(tmp_path):
    kw = dict(num_mice=2, seed=3, imaging=False, size=(64, 96), minutes=0.1)
    par = generate_dataset(tmp_path / "par", workers=2, **kw)
    seq = generate_dataset(tmp_path / "seq", workers=1, **kw)
    for p, s in zip(par, seq, strict=True):
        assert (p / "truth/frames.csv").read_bytes() == (s / "truth/frames.csv").read_bytes()
        assert not (p / "suite2p").exists()
    ids = [json.loads((p / "session.json").read_text())["params"]["identity"] for p in par]
    assert ids[0]["fur_level"] != ids[1]["fur_level"]
    assert [r["path"] for r in _csv(tmp_path / "par" / "manifest.csv")] == ["m01/s01", "m02/s01"]


def test_animal_identity_is_shared_across_sessions(tmp_path):
    paths = generate_dataset(
        tmp_path, num_mice=1, num_sessions=2, seed=4, imaging=False, size=(64, 96), minutes=0.1, workers=1
    )
    metas = [json.loads((p / "session.json").read_text())["params"] for p in paths]
    assert metas[0]["identity"] == metas[1]["identity"]
    assert metas[0]["camera"] != metas[1]["camera"]
    assert [p.name for p in paths] == ["s01", "s02"]


def test_one_minute_session_has_every_label(tmp_path):
    path = generate_dataset(tmp_path, num_mice=1, minutes=1.0, seed=5, imaging=False, size=(64, 96))[0]
    assert {r["label"] for r in _csv(path / "truth" / "frames.csv")} == set(EMOTIONS)
    assert {r["label"] for r in _csv(path / "events.csv")} == set(EMOTIONS)


def test_refuses_non_empty_session_folder_unless_overwrite(tmp_path):
    kw = dict(num_mice=1, seed=0, imaging=False, size=(64, 96), minutes=0.1)
    path = generate_dataset(tmp_path, **kw)[0]
    (path / "keep.txt").write_text("user data")
    with pytest.raises(DataError, match="not empty"):
        generate_dataset(tmp_path, **kw)
    with pytest.raises(DataError, match="not empty"):
        generate_session(path, config=SynthConfig(**kw))
    assert (path / "keep.txt").exists()
    generate_dataset(tmp_path, overwrite=True, **kw)
    assert not (path / "keep.txt").exists() and (path / "session.json").exists()


def test_tiff_movie_is_consistent_with_rois(tmp_path):
    import tifffile

    path = generate_dataset(tmp_path, num_mice=1, seed=6, tiff=True, **SMALL)[0]
    movie = tifffile.imread(path / "imaging.tif")
    F = np.load(path / "suite2p/plane0/F.npy")
    stat = np.load(path / "suite2p/plane0/stat.npy", allow_pickle=True)
    iscell = np.load(path / "suite2p/plane0/iscell.npy")[:, 0]
    assert movie.dtype == np.uint16 and movie.shape[0] == F.shape[1]
    corrs = []
    for i in np.flatnonzero(iscell)[:10]:
        st = stat[i]
        trace = (movie[:, st["ypix"], st["xpix"]] * st["lam"]).sum(axis=1) / st["lam"].sum()
        corrs.append(np.corrcoef(trace, F[i])[0, 1])
    assert np.median(corrs) > 0.5


def test_config_validation():
    assert SynthConfig().validate().size == (240, 320)
    bad_values = [
        dict(minutes=0), dict(minutes=-1), dict(size=(10, 10)), dict(size=(241, 320)),
        dict(nuisance="extreme"), dict(num_mice=0), dict(fps=0), dict(num_neurons=0), dict(seed=-1),
    ]  # fmt: skip
    for bad in bad_values:
        with pytest.raises(ConfigError):
            SynthConfig(**bad).validate()


def test_schedule_and_clock_properties():
    rng = np.random.default_rng(0)
    for duration in (60.0, 180.0, 600.0):
        trials = build_schedule(duration, rng)
        onsets = [t.onset for t in trials]
        assert onsets == sorted(onsets) and trials[0].label == "neutral"
        assert trials[-1].label == "malaise" and trials[-1].onset + trials[-1].duration == pytest.approx(
            duration
        )
        pleasure = [t.amplitude for t in trials if t.stimulus == "sucrose" and t.value == "20"]
        if len(pleasure) > 2:
            assert pleasure[-1] < pleasure[0]  # satiety
    times, keep = camera_clock(600.0, 20.0, 0.05, np.random.default_rng(1))
    assert keep[0] and keep[-1] and not np.any(~keep[1:] & ~keep[:-1])
    assert (~keep).sum() > 100


def test_renderer_expressions_change_the_image():
    r = FaceRenderer(DEFAULT_IDENTITY, (120, 160))
    neutral = r.render(dynamics.pose("neutral")).astype(int)
    assert neutral.shape == (120, 160)
    again = r.render(dynamics.pose("neutral")).astype(int)
    assert np.array_equal(neutral, again)
    for emotion in dynamics.STATES:
        diff = np.abs(r.render(dynamics.pose(emotion)).astype(int) - neutral)
        assert (diff > 30).sum() > 40, emotion


def test_cli_writes_a_dataset(tmp_path, capsys):
    code = main(["synth", "--out", str(tmp_path), "--mice", "1", "--minutes", "0.1", "--size", "64x96",
                 "--neurons", "10", "--seed", "2"])  # fmt: skip
    assert code == 0
    assert (tmp_path / "manifest.csv").exists() and (tmp_path / "m01" / "s01" / "session.json").exists()
    assert "wrote 1 synthetic session" in capsys.readouterr().out
    assert main(["synth", "--out", str(tmp_path), "--mice", "1", "--minutes", "0.1", "--size", "64x96"]) == 2


@pytest.mark.parametrize(
    "args",
    [["--size", "10x10"], ["--size", "big"], ["--minutes", "0"], ["--minutes", "-2"],
     ["--nuisance", "extreme"], ["--mice", "0"], ["--fps", "0"]],
)  # fmt: skip
def test_cli_bad_input_exits_2(tmp_path, capsys, args):
    assert main(["synth", "--out", str(tmp_path / "x"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mouseemo: error:") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
