"""`mouseemo live`: live scores equal `mouseemo predict`'s, CSV after a stop, drops, triggers, LSL,
bad input. Sources are video files and Python iterables with fake clocks; no camera."""

from __future__ import annotations

import csv
import itertools
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mouseemo.cli import main
from mouseemo.inference.inputs import resolve_inputs
from mouseemo.inference.live import (
    CsvSink,
    IterableSource,
    LiveFrame,
    LiveOptions,
    LiveSession,
    Trigger,
    VideoFileSource,
)
from mouseemo.inference.prototypes import build_from_videos
from mouseemo.inference.scorers import Scorer, load_scorer
from mouseemo.models.checkpoint import RECORD_KEY
from tests.helpers import write_session, write_video
from tests.test_predict import scores_of

SIZE = (64, 96)
FPS = 20.0


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("live")
    session = write_session(root / "data", num_frames=120, size=SIZE, seed=1, fps=FPS)
    protos = root / "protos.npz"
    build_from_videos(resolve_inputs([str(session)], None, True), hog={"pixels_per_cell": 16}, k=5).save(
        protos
    )
    return {"session": session, "video": session / "face.mp4", "protos": protos}


def fake_clock(fps: float = FPS):
    """Capture times i / fps, one per call (the file source calls it once per frame)."""
    counter = itertools.count()
    return lambda: next(counter) / fps


def read_rows(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames), list(reader)


def live_csv(source, scorer, path: Path, **opts) -> dict:
    sink = CsvSink(path, scorer.columns)
    return LiveSession(source, scorer, LiveOptions(status_s=None, **opts), sinks=[sink]).run()


def live_scores(path: Path, prefix: str) -> np.ndarray:
    header, rows = read_rows(path)
    cols = [h for h in header if h.startswith(prefix + "_")]
    return np.array([[float(r[c]) for c in cols] for r in rows])


# -- the live scores are predict's ---------------------------------------------------------------
def test_live_own_neutral_equals_predict(world, tmp_path):
    out = tmp_path / "pred"
    code = main(
        ["predict", str(world["video"]), "--prototypes", str(world["protos"]), "--out", str(out),
         "--neutral", "own", "--neutral-until-s", "2", "--no-plot", "--quiet"]
    )  # fmt: skip
    assert code == 0
    expected = scores_of(out / "face.csv", "similarity")
    scorer = load_scorer(world["protos"], None, "cpu", neutral="own")
    source = VideoFileSource(world["video"], realtime=False, clock=fake_clock())
    summary = live_csv(source, scorer, tmp_path / "live.csv", reference_s=2.0, drop=False)
    got = live_scores(tmp_path / "live.csv", "similarity")
    _, rows = read_rows(tmp_path / "live.csv")
    assert [int(r["frame"]) for r in rows] == list(range(120))
    # the first 2 s (frames 0..39 at 20 fps) are the warm-up: the neutral, then scored
    assert [int(r["warmup"]) for r in rows] == [1] * 40 + [0] * 80
    np.testing.assert_allclose(got, expected, atol=2e-6)
    assert [r["label"] for r in rows] == [r[2] for r in csv.reader(open(out / "face.csv"))][1:]
    assert summary["frames"] == {
        "captured": 120, "scored": 120, "dropped": 0, "warmup": 40, "dropped_fraction": 0.0,
        "queue_size": 1, "queue_max_seen": 1,
    }  # fmt: skip
    assert summary["reference"]["frames"] == 40 and summary["latency_ms"]["frames"] == 80
    assert summary["model"]["neutral"] == {"source": "the first 2 s of the stream", "frames": 40}
    # and both are the definition, computed here without the scorer: scikit-image's HOG of every
    # frame, the neutral the mean HOG of the first 40 frames, each prototype carried over as its
    # change from the file's neutral, Pearson correlation with each
    np.testing.assert_allclose(got, own_neutral_similarity(world, 40), atol=1e-4)


def own_neutral_similarity(world, warmup: int) -> np.ndarray:
    """Similarity of every frame of the world's video to its prototypes carried onto the mean HOG of
    its first ``warmup`` frames, from scikit-image's HOG and numpy alone: ``(T, K)``."""
    from skimage.feature import hog as skimage_hog

    from mouseemo.data.video import VideoReader
    from mouseemo.models.prototypes_io import Prototypes

    protos = Prototypes.load(world["protos"])
    with VideoReader(world["video"]) as vr:
        frames = vr.read()
    feats = np.stack([skimage_hog(f, 8, (16, 16), (1, 1), "L2-Hys", transform_sqrt=True) for f in frames])
    matrix = np.asarray(protos.matrix, dtype=np.float64)
    k = protos.names.index("neutral")
    carried = matrix - matrix[k] + feats[:warmup].mean(0)
    a = feats - feats.mean(1, keepdims=True)
    b = carried - carried.mean(1, keepdims=True)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    return a @ b.T


def test_live_temporal_checkpoint_equals_predict(tmp_path, monkeypatch):
    from mouseemo.models import checkpoint as checkpoint_module

    monkeypatch.setattr(checkpoint_module, "check_targets", lambda record, source: None)
    frames = np.stack([np.full((32, 48), 7 * (i + 1), np.uint8) for i in range(30)])
    video = write_video(tmp_path / "ramp.avi", frames, fourcc="MJPG")
    ckpt = tmp_path / "temporal.ckpt"
    record = {
        "version": "test",
        "model": {"_target_": "tests.test_predict.WindowMean"},
        "data": {"crop": None, "image_size": None, "classes": ["neutral", "pain"], "clip_step": 2},
    }
    torch.save({"state_dict": {}, RECORD_KEY: record}, ckpt)
    out = tmp_path / "pred"
    assert main(["predict", str(video), "--ckpt", str(ckpt), "--out", str(out), "--no-plot", "--quiet"]) == 0
    scorer = load_scorer(None, ckpt, "cpu")
    source = VideoFileSource(video, realtime=False, clock=fake_clock())
    live_csv(source, scorer, tmp_path / "live.csv", drop=False)
    np.testing.assert_allclose(
        live_scores(tmp_path / "live.csv", "prob"), scores_of(out / "ramp.csv", "prob"), atol=1e-6
    )


# -- stopping: the CSV is complete ---------------------------------------------------------------
def test_cli_max_frames_csv_and_summary(world, tmp_path, capsys):
    csv_path, summary_path = tmp_path / "live.csv", tmp_path / "live.json"
    code = main(
        ["live", "--video", str(world["video"]), "--prototypes", str(world["protos"]), "--csv", str(csv_path),
         "--summary", str(summary_path), "--max-frames", "50", "--as-fast-as-possible", "--no-drop", "--quiet"]
    )  # fmt: skip
    assert code == 0 and capsys.readouterr().err == ""
    header, rows = read_rows(csv_path)
    assert header[:6] == ["frame", "capture_s", "score_s", "latency_ms", "warmup", "label"]
    assert [int(r["frame"]) for r in rows] == list(range(50))
    assert all(float(r["latency_ms"]) >= 0 and r["label"] for r in rows)
    s = json.loads(summary_path.read_text())
    assert s["frames"]["captured"] == 50 and s["frames"]["scored"] == 50
    assert "frame limit" in s["stop_reason"] and s["latency_ms"]["p99"] >= s["latency_ms"]["median"] > 0
    # an existing output is not replaced without --overwrite
    code = main(
        ["live", "--video", str(world["video"]), "--prototypes", str(world["protos"]), "--csv", str(csv_path)]
    )
    assert code == 2 and "--overwrite" in capsys.readouterr().err


def test_cli_threads(world, tmp_path, capsys, monkeypatch):
    """--threads sets torch's CPU threads for scoring (default 1); 0 is one clear error."""
    import torch

    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append(n))
    calls = []
    args = ["live", "--video", str(world["video"]), "--prototypes", str(world["protos"]), "--max-frames", "5",
            "--as-fast-as-possible", "--no-drop", "--quiet"]  # fmt: skip
    assert main([*args, "--threads", "0"]) == 2 and "--threads must be >= 1; got 0" in capsys.readouterr().err
    assert calls == []
    assert main(args) == 0 and main([*args, "--threads", "2"]) == 0
    assert calls == [1, 2]


def test_cli_plot(world, tmp_path, capsys):
    png = tmp_path / "live.png"
    args = ["live", "--video", str(world["video"]), "--prototypes", str(world["protos"]), "--max-frames", "30",
            "--as-fast-as-possible", "--no-drop", "--quiet", "--plot", str(png)]  # fmt: skip
    assert main(args) == 2 and "give --csv too" in capsys.readouterr().err and not png.exists()
    assert main([*args, "--csv", str(tmp_path / "l.csv"), "--summary", str(tmp_path / "l.json")]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "l.json").read_text())["plot"] == str(png)


def test_stalled_source_stops_with_a_complete_csv(world, tmp_path):
    release = threading.Event()

    def frames():
        for i in range(5):
            yield i / FPS, np.full(SIZE, 100 + i, np.uint8)
        release.wait(10)  # a camera that stops delivering

    scorer = load_scorer(world["protos"], None, "cpu")
    try:
        summary = live_csv(
            IterableSource(frames()), scorer, tmp_path / "live.csv", stall_timeout_s=0.3, drop=False
        )
    finally:
        release.set()
    _, rows = read_rows(tmp_path / "live.csv")
    assert [int(r["frame"]) for r in rows] == list(range(5))
    assert summary["stop_reason"].startswith("no frame from frames for 0.3 s")


# -- drops ---------------------------------------------------------------------------------------
class SlowScorer(Scorer):
    kind = "test"

    def __init__(self, delay: float) -> None:
        super().__init__("slow", ["dark", "bright"], "prob", None, None, "cpu")
        self.delay = delay

    def check(self, height, width, source):
        pass

    def stream(self):
        def score(x):
            time.sleep(self.delay * len(x))
            p = x.float().mean(dim=(1, 2)) / 255.0
            return torch.stack([1 - p, p], dim=1)

        return score


def test_slow_scorer_drops_the_oldest_frames_counted_exactly(tmp_path):
    def frames():
        for i in range(100):
            time.sleep(0.004)
            yield time.monotonic(), np.full((8, 8), i, np.uint8)

    warnings = []
    sink = CsvSink(tmp_path / "live.csv", ["prob_dark", "prob_bright"])
    session = LiveSession(
        IterableSource(frames(), fps=250.0), SlowScorer(0.012), LiveOptions(queue_size=2, status_s=None),
        sinks=[sink], warn=warnings.append,
    )  # fmt: skip
    summary = session.run()
    _, rows = read_rows(tmp_path / "live.csv")
    scored = [int(r["frame"]) for r in rows]
    f = summary["frames"]
    assert f["captured"] == 100 and f["scored"] == len(rows) and f["dropped"] > 0
    assert f["scored"] + f["dropped"] == 100 and f["dropped"] == 100 - len(set(scored))
    assert f["queue_max_seen"] <= 2
    assert scored == sorted(scored) and scored[-1] == 99  # the newest frame is never the one dropped
    # each frame's scores are its own (frame i has brightness i)
    np.testing.assert_allclose([float(r["prob_bright"]) for r in rows], np.array(scored) / 255.0, atol=1e-6)
    assert len(warnings) == 1 and "below the source's 250.0 frames/s" in warnings[0]
    assert summary["warnings"] == warnings


# -- triggers ------------------------------------------------------------------------------------
PAIN = [0.9, 0.9, 0.9, 0.5, 0.9, 0.9, 0.9, 0.9, 0.75, 0.85, 0.6, 0.9, 0.9, 0.9, 0.5, 0.9, 0.9, 0.9]


def _frames(values, warmup=()):
    return [
        LiveFrame(
            i, round(0.1 * i, 6), 0.0, np.array([1 - v, v], np.float32), "", ["neutral", "pain"], i in warmup
        )
        for i, v in enumerate(values)
    ]


def test_trigger_fires_at_the_frames_of_its_rule():
    # above 0.8 for 0.2 s (3 frames at 10 fps), re-armed below 0.7:
    # run 0-2 fires at 2; 3 re-arms; run 4-6 fires at 6; 8 (0.75) is not below 0.7, 10 re-arms;
    # run 11-13 fires at 13; 14 re-arms; run 15-17 fires at 17
    called = []
    trig = Trigger("pain", above=0.8, for_s=0.2, release=0.7, action=called.append)
    for f in _frames(PAIN):
        trig(f)
    assert [f.index for f in trig.fired] == [2, 6, 13, 17] and called == trig.fired
    # a 1 s refractory period after firing at t=0.2: re-armed only at 14 (t=1.4, below 0.7)
    trig = Trigger("pain", above=0.8, for_s=0.2, release=0.7, refractory_s=1.0)
    for f in _frames(PAIN):
        trig(f)
    assert [f.index for f in trig.fired] == [2, 17]
    # warm-up frames are ignored; for_s=0 fires on a run's first frame; below= counts down
    trig = Trigger("pain", above=0.8, action=None)
    for f in _frames(PAIN, warmup={0, 1}):
        trig(f)
    assert [f.index for f in trig.fired] == [2, 4, 9, 11, 15]
    trig = Trigger("neutral", below=0.2, for_s=0.1)
    for f in _frames(PAIN):
        trig(f)
    assert [f.index for f in trig.fired] == [1, 5, 12, 16]


def test_trigger_in_a_session(tmp_path):
    values = [10, 250, 250, 250, 10, 250, 250]
    frames = [(0.1 * i, np.full((8, 8), v, np.uint8)) for i, v in enumerate(values)]
    trig = Trigger("bright", above=0.5, for_s=0.1)
    session = LiveSession(
        IterableSource(frames), SlowScorer(0.0), LiveOptions(drop=False, status_s=None), callbacks=[trig]
    )
    session.run()
    assert [f.index for f in trig.fired] == [2, 6]


# -- bad input -----------------------------------------------------------------------------------
def test_bad_camera_index_is_one_error_line(world, capfd):
    code = main(["live", "--camera", "99", "--prototypes", str(world["protos"]), "--quiet"])
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["mouseemo: error: no camera at index 99: OpenCV could not open it"]


def test_lsl_without_pylsl_is_one_error_line(world, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pylsl", None)  # import fails
    code = main(["live", "--video", str(world["video"]), "--prototypes", str(world["protos"]), "--lsl", "x"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ['mouseemo: error: --lsl output needs pylsl: pip install "mouseemo[live]"']


def test_lsl_outlet_pushes_one_sample_per_scored_frame(world):
    pylsl = pytest.importorskip("pylsl")
    from mouseemo.inference.live.lsl import LslSink

    scorer = load_scorer(world["protos"], None, "cpu")
    name = f"mouseemo-test-{time.time_ns()}"
    lsl = LslSink(name, scorer.names, scorer.prefix, FPS)
    found = pylsl.resolve_byprop("name", name, timeout=5)
    assert found
    inlet = pylsl.StreamInlet(found[0])
    inlet.open_stream(timeout=5)
    assert inlet.info().channel_count() == len(scorer.names)
    pushed = []
    source = VideoFileSource(world["video"], realtime=False, clock=fake_clock())
    LiveSession(
        source,
        scorer,
        LiveOptions(drop=False, max_frames=30, status_s=None),
        sinks=[lambda f: lsl(f)],  # kept open (not closed by the session) until read back
        callbacks=[pushed.append],
    ).run()
    samples, stamps = [], []
    deadline = time.monotonic() + 5
    while len(samples) < 30 and time.monotonic() < deadline:
        chunk, ts = inlet.pull_chunk(timeout=0.2)
        samples += chunk
        stamps += ts
    assert len(samples) == 30 and len(pushed) == 30
    np.testing.assert_allclose(samples, [f.scores for f in pushed], atol=1e-6)
    np.testing.assert_allclose(stamps, [f.capture_s + lsl.offset for f in pushed], atol=1e-6)
    inlet.close_stream()
    lsl.close()
