"""`mouseemo predict`: batches of good and bad inputs, resume, output schema, checkpoints, overlay,
NWB, streaming, workers, quality checks, and real faces."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from mouseemo.cli import main
from mouseemo.data.video import FrameCache, VideoReader
from mouseemo.errors import ConfigError
from mouseemo.inference.inputs import InputFailure, expand_inputs, resolve_inputs
from mouseemo.inference.prototypes import build_from_videos
from mouseemo.inference.qc import StreamingQC, frame_stats, spans
from mouseemo.inference.rateable import COLUMNS as RATEABLE
from mouseemo.inference.stream import decode_ahead
from mouseemo.models.checkpoint import RECORD_KEY
from mouseemo.models.prototypes_io import Prototypes
from mouseemo.ops import hog
from mouseemo.ops.similarity import pearson_similarity
from tests.helpers import label_frames, write_dataset, write_session, write_video
from tests.test_train import train_small_checkpoints

REPO = Path(__file__).resolve().parents[1]
SIZE = (64, 96)  # frames of the prototype fixtures (H, W)


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def scores_of(path: Path, prefix: str) -> np.ndarray:
    header, rows = read_csv(path)
    cols = [i for i, h in enumerate(header) if h.startswith(prefix + "_")]
    return np.array([[float(r[i]) for i in cols] for r in rows])


def run_cli(*args: str) -> int:
    return main(["predict", *[str(a) for a in args]])


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Three sessions (64x96), prototypes from the first, and a folder of broken inputs."""
    root = tmp_path_factory.mktemp("world")
    sessions = [
        write_session(root / "data", animal=f"m0{k}", num_frames=120, size=SIZE, seed=k) for k in (1, 2, 3)
    ]
    protos = root / "protos.npz"
    build_from_videos(resolve_inputs([str(sessions[0])], None, True), hog={"pixels_per_cell": 16}, k=5).save(
        protos
    )
    bad = root / "bad"
    bad.mkdir()
    (bad / "empty.mp4").write_bytes(b"")
    (bad / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    frames = label_frames(np.arange(100) % 7, SIZE)
    write_video(bad / "full.avi", frames, 20.0, "MJPG")
    data = (bad / "full.avi").read_bytes()
    (bad / "truncated.avi").write_bytes(data[: int(len(data) * 0.6)])
    codec = bytearray(data)
    head = bytes(codec[:4096])
    for i in (head.find(b"MJPG"), head.find(b"MJPG", head.find(b"MJPG") + 1)):
        codec[i : i + 4] = b"ZZ9Q"
    (bad / "codec.avi").write_bytes(bytes(codec))
    (bad / "full.avi").unlink()
    write_video(bad / "small.mp4", label_frames(np.arange(30) % 7, (48, 64)), 20.0)
    return {"root": root, "sessions": sessions, "protos": protos, "bad": bad}


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """A tiny trained CNN (crop + resize) and HOG-prototype model (native frames), on 48x64 frames."""
    base = tmp_path_factory.mktemp("ckpt")
    ds = write_dataset(base / "ds", num_mice=3, num_frames=80)
    return {"dataset": ds, **train_small_checkpoints(base, ds)}


# -- a batch of good and bad inputs --------------------------------------------------------------
def test_batch_with_good_and_bad_inputs(world, tmp_path, capsys):
    out = tmp_path / "pred"
    bad = world["bad"]
    missing = world["root"] / "nope.mp4"
    code = run_cli(world["sessions"][0], bad, missing, "--prototypes", world["protos"], "--out", out)
    captured = capsys.readouterr()
    assert code == 2
    errors = [line for line in captured.err.splitlines() if line.startswith("mouseemo: error:")]
    warnings = [line for line in captured.err.splitlines() if line.startswith("mouseemo: warning:")]
    assert len(errors) == 5 and len(warnings) == 1, captured.err
    assert not [line for line in captured.err.splitlines() if line and not line.startswith("mouseemo: ")]
    by_name = {
        name: next(e for e in errors if name in e)
        for name in ("codec.avi", "corrupt.mp4", "empty.mp4", "small.mp4", "nope.mp4")
    }
    assert "codec 'ZZ9Q' unsupported" in by_name["codec.avi"]
    assert "not a video container" in by_name["corrupt.mp4"]
    assert "empty (0 bytes)" in by_name["empty.mp4"]
    assert (
        "prototypes were built on 96x64 (w x h) frames" in by_name["small.mp4"]
        and "got 64x48" in by_name["small.mp4"]
    )
    assert "video not found" in by_name["nope.mp4"]
    assert "truncated.avi: truncated: decoded" in warnings[0]
    # good and truncated videos have outputs; failed ones have none, and no temporary files are left
    names = sorted(p.name for p in out.iterdir())
    expected = [f"{s}{x}" for s in ("m01_s01", "truncated") for x in (".csv", ".json", ".png")]
    markers = [f".{s}.mouseemo.json" for s in ("m01_s01", "truncated")]  # which files are mouseemo's
    assert names == sorted(expected + markers)
    summary = json.loads((out / "truncated.json").read_text())
    dec = summary["decoding"]
    assert dec["truncated"] and dec["expected_frames"] == 100 and dec["decoded_frames"] == summary["frames"]
    assert 0 < summary["frames"] < 100 and dec["missing_frames"] == 100 - summary["frames"]
    assert len(read_csv(out / "truncated.csv")[1]) == summary["frames"]
    assert summary["warnings"] and summary["warnings"][0].startswith("truncated")
    # the final table names every input with its status
    table = captured.out
    assert "2 done, 0 skipped, 5 failed" in table
    for name in ("m01/s01/face.mp4", "truncated.avi", "codec.avi", "nope.mp4"):
        assert name in table


def test_crop_outside_the_frame_fails_that_video_only(world, tmp_path, capsys):
    protos = tmp_path / "cropped.npz"
    build_from_videos(
        resolve_inputs([str(world["sessions"][0])], None, True),
        crop=(40, 20, 56, 44),
        hog={"pixels_per_cell": 16},
    ).save(protos)
    out = tmp_path / "pred"
    code = run_cli(world["sessions"][1], world["bad"] / "small.mp4", "--prototypes", protos, "--out", out)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "small.mp4" in err[0] and "lies outside the 64x48 (w x h) frame" in err[0]
    assert json.loads((out / "m02_s01.json").read_text())["crop"] == [40, 20, 56, 44]
    assert not list(out.glob("small*"))


def test_subprocess_errors_are_lines_not_tracebacks(world, tmp_path):
    out = tmp_path / "pred"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [
        sys.executable,
        "-m",
        "mouseemo",
        "predict",
        str(world["sessions"][0]),
        str(world["bad"] / "corrupt.mp4"),
    ]
    args += [
        str(world["bad"] / "codec.avi"),
        "--prototypes",
        str(world["protos"]),
        "--out",
        str(out),
        "--no-plot",
    ]
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("mouseemo: error: ") for line in lines), proc.stderr
    assert "1 done, 0 skipped, 2 failed" in proc.stdout
    assert (out / "m01_s01.json").is_file() and not list(out.glob("corrupt*"))
    # a problem with the run itself (not one video) is one line too
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mouseemo",
            "predict",
            str(world["sessions"][0]),
            "--prototypes",
            "missing.npz",
        ]
        + ["--out", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (
        proc.returncode == 2
        and proc.stderr.strip() == "mouseemo: error: prototypes file not found: missing.npz"
    )


# -- inputs --------------------------------------------------------------------------------------
def test_inputs_folders_globs_manifests(world, tmp_path):
    data = world["root"] / "data"
    items = expand_inputs([str(data)])
    assert [i.stem for i in items] == ["m01_s01", "m02_s01", "m03_s01"]
    assert all(i.events is not None and i.meta["fps"] == 20.0 for i in items)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"animal,session,path\nA,x,{data / 'm02' / 's01'}\nB,y,{tmp_path / 'gone'}\n")
    got = expand_inputs([str(manifest)])
    assert (
        got[0].stem == "A_x"
        and isinstance(got[1], InputFailure)
        and "session folder not found" in got[1].message
    )
    assert expand_inputs([str(tmp_path)])[0].stem == "A_x"  # a folder with a manifest
    # a plain folder: videos found recursively, stems from their relative paths; the output folder is skipped
    tree = tmp_path / "tree"
    (tree / "day1").mkdir(parents=True)
    (tree / "out").mkdir()
    write_video(tree / "day1" / "cam.mp4", label_frames(np.arange(5), SIZE))
    write_video(tree / "top.avi", label_frames(np.arange(5), SIZE), fourcc="MJPG")
    write_video(tree / "out" / "x.overlay.mp4", label_frames(np.arange(5), SIZE))
    (tree / "notes.txt").write_text("not a video")
    assert [i.stem for i in expand_inputs([str(tree)], exclude=tree / "out")] == ["day1_cam", "top"]
    pattern = str(tree / "**" / "*.mp4")
    assert sorted(i.stem for i in expand_inputs([pattern])) == ["cam", "x.overlay"]
    assert isinstance(expand_inputs([str(tree / "*.mkv")])[0], InputFailure)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no session folders or videos" in expand_inputs([str(empty)])[0].message
    # the same video twice is predicted once
    assert len(expand_inputs([str(tree / "top.avi"), str(tree / "top.avi")])) == 1
    with pytest.raises(ConfigError, match="once per input"):
        expand_inputs([str(tree)], events=["a.csv", "b.csv"])
    with pytest.raises(ConfigError, match="stands for 2 videos"):
        expand_inputs([str(tree)], events=[str(data / "m01" / "s01" / "events.csv")], exclude=tree / "out")


def test_events_option_overrides_the_session_events(world, tmp_path):
    events = tmp_path / "one.csv"
    events.write_text("onset,duration,label,value\n0,1,neutral,\n2.0,1.0,pain,0.5\n")
    out = tmp_path / "pred"
    code = run_cli(world["sessions"][0], "--events", events, "--prototypes", world["protos"], "--out", out)
    assert code == 0
    s = json.loads((out / "m01_s01.json").read_text())
    assert s["events"] == str(events)
    assert [(st["label"], st["value"]) for st in s["stimuli"]] == [("pain", 0.5)]
    assert s["stimuli"][0]["score"] == "similarity_pain" and s["stimuli"][0]["intensity"] is not None
    assert run_cli(world["sessions"][0], "--events", tmp_path / "gone.csv", "--prototypes", world["protos"],
                   "--out", tmp_path / "p2") == 2  # fmt: skip


def test_same_stem_twice_is_refused(world, tmp_path, capsys):
    other = tmp_path / "elsewhere"
    other.mkdir()
    write_video(other / "face.mp4", label_frames(np.arange(10) % 7, SIZE))
    video = world["sessions"][0] / "face.mp4"
    code = run_cli(video, other / "face.mp4", "--prototypes", world["protos"], "--out", tmp_path / "o")
    assert code == 2 and "would both write" in capsys.readouterr().err


# -- outputs -------------------------------------------------------------------------------------
def test_csv_and_json_schema(world, tmp_path):
    session = world["sessions"][1]
    out = tmp_path / "pred"
    assert run_cli(session, "--prototypes", world["protos"], "--out", out, "--overlay") == 0
    protos = Prototypes.load(world["protos"])
    header, rows = read_csv(out / "m02_s01.csv")
    assert header == ["frame", "time_s", "label", *[f"similarity_{n}" for n in protos.names], *RATEABLE]
    assert [int(r[0]) for r in rows] == list(range(120))
    t = np.loadtxt(session / "face_timestamps.csv", delimiter=",", skiprows=1)[:, 1]
    np.testing.assert_allclose([float(r[1]) for r in rows], t, atol=1e-6)
    sim = scores_of(out / "m02_s01.csv", "similarity")
    assert all(r[2] == protos.names[int(np.argmax(s))] for r, s in zip(rows, sim))
    # the similarities are those of the HOG of the decoded frames
    with VideoReader(session / "face.mp4") as vr:
        expected = pearson_similarity(hog(vr.read(), **protos.hog), protos.matrix.astype(np.float64))
    np.testing.assert_allclose(sim, expected, atol=5e-6)
    s = json.loads((out / "m02_s01.json").read_text())
    for key in ("video", "model", "names", "columns", "frames", "fps", "duration_s", "seconds_per_label",
                "fraction_per_label", "mean_similarity", "stimuli", "qc", "decoding", "warnings", "outputs",
                "processing"):  # fmt: skip
        assert key in s, key
    assert s["columns"] == header and s["frames"] == 120 and s["fps"] == pytest.approx(20.0)
    assert s["model"]["kind"] == "prototypes" and s["model"]["hog"]["pixels_per_cell"] == [16, 16]
    assert sum(s["seconds_per_label"].values()) == pytest.approx(6.0)
    assert {st["label"] for st in s["stimuli"]} == set(protos.names) - {"neutral"}
    assert all("intensity" in st for st in s["stimuli"])
    qc = s["qc"]
    assert qc["frames"]["num_dropped"] == 0 and qc["frames"]["num_duplicated"] == 0
    assert {"brightness", "blur", "crop_drift", "low_confidence", "flags", "ok"} <= set(qc)
    assert not s["decoding"]["truncated"] and s["outputs"]["overlay"] == "m02_s01.overlay.mp4"
    # the overlay video: one frame per input frame, the face enlarged so the text is legible
    cap = cv2.VideoCapture(str(out / "m02_s01.overlay.mp4"))
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if n == 0:
            assert frame.shape == (6 * SIZE[0], 6 * SIZE[1], 3)
        n += 1
    assert n == 120


def test_resume_overwrite_and_interrupted_runs(world, tmp_path, capsys, monkeypatch):
    out = tmp_path / "pred"
    args = [*world["sessions"][:2], "--prototypes", world["protos"], "--out", out, "--no-plot"]
    assert run_cli(*args) == 0
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    capsys.readouterr()
    assert run_cli(*args) == 0
    captured = capsys.readouterr().out
    assert captured.count("skip ") == 2 and "0 done, 2 skipped, 0 failed" in captured
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes
    # a plot now wanted: the video is not finished for this run, so it is redone
    assert run_cli(*args[:-1]) == 0 and (out / "m01_s01.png").is_file()
    # a CSV without its JSON (an interrupted commit) does not count as finished
    (out / "m02_s01.json").unlink()
    assert run_cli(*args) == 0 and "1 done, 1 skipped" in capsys.readouterr().out
    assert run_cli(*args, "--overwrite") == 0
    assert all(p.stat().st_mtime_ns != mtimes[p.name] for p in out.iterdir() if p.name in mtimes)

    # a failure in the middle of a video: nothing of it is written, no temporary file is left, the
    # earlier complete outputs of that video are untouched
    from mouseemo.inference import scorers

    calls = {"n": 0}
    original = scorers.PrototypeScorer.stream

    def failing_stream(self):
        score = original(self)

        def wrapped(x):
            calls["n"] += 1
            if calls["n"] == 2:
                raise RuntimeError("disk on fire")
            return score(x)

        return wrapped

    monkeypatch.setattr(scorers.PrototypeScorer, "stream", failing_stream)
    fresh = tmp_path / "fresh"
    code = run_cli(
        world["sessions"][0], "--prototypes", world["protos"], "--out", fresh, "--batch-size", "32"
    )
    err = capsys.readouterr().err
    assert code == 2 and "RuntimeError" in err and "disk on fire" in err and err.count("\n") == 1
    assert fresh.is_dir() and list(fresh.iterdir()) == []
    calls["n"] = 0
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert run_cli(*args, "--overwrite", "--batch-size", "32") == 2
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()}["m01_s01.csv"] == before["m01_s01.csv"]
    assert sorted(p.name for p in out.iterdir()) == sorted(before)


def test_workers_give_the_same_outputs(world, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    common = ["--prototypes", world["protos"], "--no-plot", "--batch-size", "48"]
    assert run_cli(*world["sessions"], *common, "--out", one, "--workers", "1") == 0
    assert run_cli(*world["sessions"], *common, "--out", two, "--workers", "2") == 0
    for stem in ("m01_s01", "m02_s01", "m03_s01"):
        assert (one / f"{stem}.csv").read_bytes() == (two / f"{stem}.csv").read_bytes()
        a, b = (json.loads((d / f"{stem}.json").read_text()) for d in (one, two))
        for d in (a, b):
            d.pop("processing")
            d.pop("created")
        assert a == b


def test_streaming_consumes_the_reader_in_bounded_chunks(world, tmp_path, monkeypatch):
    """The decoder runs at most `depth` chunks ahead of scoring; no chunk exceeds the batch size; the
    video is decoded once (timestamps and QC need no counting pass)."""
    from mouseemo.inference import pipeline, scorers

    log: list[tuple[str, int]] = []
    lock = threading.Lock()
    original_iter = VideoReader.iter_chunks

    def counting_iter(self, chunk_size=256, start=0, stop=None):
        for first, frames in original_iter(self, chunk_size, start, stop):
            with lock:
                log.append(("decoded", len(frames)))
            yield first, frames

    original_stream = scorers.PrototypeScorer.stream

    def counting_stream(self):
        score = original_stream(self)

        def wrapped(x):
            time.sleep(0.01)  # a slow model: the decoder must wait, not run to the end
            with lock:
                log.append(("scored", len(x)))
            return score(x)

        return wrapped

    monkeypatch.setattr(VideoReader, "iter_chunks", counting_iter)
    monkeypatch.setattr(scorers.PrototypeScorer, "stream", counting_stream)

    def no_counting_pass(self):
        raise AssertionError("num_frames decodes the whole video once more")

    monkeypatch.setattr(VideoReader, "num_frames", property(no_counting_pass))
    scorer = scorers.PrototypeScorer.load(world["protos"], "cpu")
    item = pipeline.PredictInput(world["sessions"][2] / "face.mp4", world["sessions"][2] / "events.csv", "s")
    opts = pipeline.PredictOptions(batch_size=8, depth=2, plot=False)
    summary = pipeline.predict_video(item, scorer, tmp_path, opts)
    assert summary["frames"] == 120
    decoded = [n for kind, n in log if kind == "decoded"]
    assert len(decoded) == 15 and max(decoded) <= 8
    ahead, worst = 0, 0
    for kind, _ in log:
        ahead += 1 if kind == "decoded" else -1
        worst = max(worst, ahead)
    # in flight: `depth` queued + one being handed over + one being decoded
    assert worst <= opts.depth + 2, log


# -- checkpoints ---------------------------------------------------------------------------------
def _training_frames(video: Path, crop, size, tmp_path: Path) -> np.ndarray:
    """The frames exactly as the training datamodule delivered them (its frame cache)."""
    return np.array(FrameCache.build(video, tmp_path / "cache.npy", crop=crop, size=size).frames)


def test_ckpt_classifier(ckpts, tmp_path):
    session = ckpts["dataset"] / "m02" / "s01"
    out = tmp_path / "pred"
    assert run_cli(session, "--ckpt", ckpts["cnn"], "--out", out, "--overlay") == 0
    header, rows = read_csv(out / "m02_s01.csv")
    from mouseemo.constants import EMOTIONS

    assert header == ["frame", "time_s", "label", *[f"prob_{n}" for n in EMOTIONS], *RATEABLE]
    prob = scores_of(out / "m02_s01.csv", "prob")
    assert prob.shape == (80, 7)
    np.testing.assert_allclose(prob.sum(1), 1.0, atol=1e-4)
    assert [r[2] for r in rows] == [EMOTIONS[i] for i in prob.argmax(1)]
    # the same numbers as the trained module on the training pipeline's frames (crop, then resize)
    from mouseemo.models.checkpoint import load_model

    loaded = load_model(ckpts["cnn"])
    frames = _training_frames(session / "face.mp4", (2, 1, 60, 44), (24, 32), tmp_path)
    batch = loaded.module.on_after_batch_transfer({"image": torch.from_numpy(frames)[:, None]}, 0)
    with torch.no_grad():
        expected = loaded.module(batch["image"]).softmax(1).numpy()
    np.testing.assert_allclose(prob, expected, atol=5e-6)
    s = json.loads((out / "m02_s01.json").read_text())
    assert s["model"]["kind"] == "checkpoint" and s["model"]["score_prefix"] == "prob"
    assert s["crop"] == [2, 1, 60, 44] and s["resize"] == [24, 32] and "mean_prob" in s
    assert s["qc"]["low_confidence"]["measure"] == "highest class probability"
    assert cv2.VideoCapture(str(out / "m02_s01.overlay.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 80


def test_ckpt_hog_prototypes_and_incompatible_input(ckpts, world, tmp_path, capsys):
    session = ckpts["dataset"] / "m03" / "s01"
    out = tmp_path / "pred"
    code = run_cli(session, world["sessions"][0], "--ckpt", ckpts["hog_proto"], "--out", out)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "m01/s01/face.mp4" in err[0] and "hog_proto" in err[0] and "got 96x64" in err[0]
    from mouseemo.models.checkpoint import load_model

    loaded = load_model(ckpts["hog_proto"])
    header, rows = read_csv(out / "m03_s01.csv")
    assert header[3:-2] == [f"similarity_{n}" for n in loaded.score_names]
    sim = scores_of(out / "m03_s01.csv", "similarity")
    frames = _training_frames(session / "face.mp4", None, None, tmp_path)
    with torch.no_grad():
        expected = loaded.module(torch.from_numpy(frames)[:, None]).numpy()
    np.testing.assert_allclose(sim, expected, atol=2e-6)
    assert not list(out.glob("m01_s01*"))


class WindowMean(pl.LightningModule):
    """A temporal test model: P(neutral) = mean brightness of the frames in its window / 255."""

    clip_length = 3

    def __init__(self, classes=("neutral", "pain")) -> None:
        super().__init__()
        self.classes = list(classes)
        self.seen_shapes: list[tuple] = []

    def on_after_batch_transfer(self, batch, dataloader_idx):
        batch["frames"] = batch["frames"].float() / 255.0
        return batch

    def forward(self, frames):
        self.seen_shapes.append(tuple(frames.shape))
        m = frames.mean(dim=(2, 3, 4))  # (B, T)
        p = m.mean(dim=1, keepdim=True)
        return torch.cat([p, 1 - p], dim=1)

    def predict_step(self, batch, batch_idx):
        return self(batch["frames"])


@pytest.mark.parametrize("step", [1, 2])
def test_temporal_checkpoint_sees_windows_ending_at_each_frame(tmp_path, step, monkeypatch):
    # the test model lives here, not in mouseemo.models: let load_model rebuild this one target
    from mouseemo.models import checkpoint as checkpoint_module

    def only_window_mean(record, source):
        assert record == {"_target_": f"{__name__}.WindowMean"}

    monkeypatch.setattr(checkpoint_module, "check_targets", only_window_mean)
    frames = np.stack([np.full((32, 48), 10 * (i + 1), np.uint8) for i in range(20)])
    video = write_video(tmp_path / "ramp.avi", frames, fourcc="MJPG")
    ckpt = tmp_path / "temporal.ckpt"
    record = {
        "version": "test",
        "model": {"_target_": f"{__name__}.WindowMean"},
        "data": {"crop": None, "image_size": None, "classes": ["neutral", "pain"], "clip_step": step},
    }
    torch.save({"state_dict": {}, RECORD_KEY: record}, ckpt)
    out = tmp_path / "pred"
    assert run_cli(video, "--ckpt", ckpt, "--out", out, "--batch-size", "7", "--no-plot") == 0
    with VideoReader(video) as vr:
        decoded = vr.read().astype(np.float64).mean(axis=(1, 2)) / 255.0
    span = 2 * step + 1
    padded = np.concatenate([[decoded[0]] * (span - 1), decoded])
    expected = np.array([padded[i : i + span : step].mean() for i in range(20)])  # i-2s, i-s, i
    prob = scores_of(out / "ramp.csv", "prob")
    np.testing.assert_allclose(prob[:, 0], expected, atol=1e-5)
    assert json.loads((out / "ramp.json").read_text())["model"]["clip_length"] == 3


# -- NWB -----------------------------------------------------------------------------------------
def test_nwb_export(world, tmp_path):
    pynwb = pytest.importorskip("pynwb")
    out = tmp_path / "pred"
    assert (
        run_cli(world["sessions"][2], "--prototypes", world["protos"], "--out", out, "--nwb", "--no-plot")
        == 0
    )
    header, rows = read_csv(out / "m03_s01.csv")
    sim = scores_of(out / "m03_s01.csv", "similarity")
    with pynwb.NWBHDF5IO(str(out / "m03_s01.nwb"), "r") as io:
        nwb = io.read()
        behavior = nwb.processing["behavior"]
        for j, col in enumerate(header[3:-2]):
            ts = behavior[col]
            np.testing.assert_allclose(ts.data[:], sim[:, j], atol=1e-6)
            np.testing.assert_allclose(ts.timestamps[:], [float(r[1]) for r in rows], atol=1e-6)
        states = behavior["emotion_states"].to_dataframe()
        assert nwb.subject.subject_id == "m03"
    labels = [r[2] for r in rows]
    runs = [lab for i, lab in enumerate(labels) if i == 0 or lab != labels[i - 1]]
    assert list(states["label"]) == runs
    assert states["start_time"].iloc[0] == pytest.approx(0.0)


def test_nwb_flag_without_pynwb(world, tmp_path, capsys, monkeypatch):
    from mouseemo.inference import nwb

    monkeypatch.setattr(nwb, "nwb_available", lambda: False)
    code = run_cli(world["sessions"][0], "--prototypes", world["protos"], "--out", tmp_path / "o", "--nwb")
    assert code == 2 and "pip install 'mouseemo[nwb]'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# -- pieces --------------------------------------------------------------------------------------
def test_decode_ahead_order_errors_and_early_exit():
    assert list(decode_ahead(iter(range(10)), prepare=lambda x: -x, depth=3)) == [-x for x in range(10)]

    def broken():
        yield 1
        yield 2
        raise ValueError("bad frame")

    got = []
    with pytest.raises(ValueError, match="bad frame"):
        for x in decode_ahead(broken()):
            got.append(x)
    assert got == [1, 2]
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    before = threading.active_count()
    it = decode_ahead(endless(), depth=2)
    assert next(it) == 0
    time.sleep(0.2)  # the producer fills the queue and then waits
    assert len(produced) <= 1 + 2 + 1
    it.close()  # stops and joins the decoding thread
    assert threading.active_count() == before


def test_qc_detects_drift_blur_and_frame_problems():
    fps, n = 20.0, 400
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:48, 0:64]
    base = (100 + 60 * np.sin(xx / 3.0) * np.cos(yy / 4.0)).astype(np.float32)
    frames = []
    for i in range(n):
        f = base * (1.0 + 0.5 * i / n)  # brightness ramps up by half
        if i >= 200:
            f = np.roll(f, 6, axis=1)  # the face slides 6 px to the right
        f = np.clip(f + rng.normal(0, 2, f.shape), 0, 255).astype(np.uint8)
        if 100 <= i < 140:
            f = cv2.GaussianBlur(f, (0, 0), 2.5)
        frames.append(f)
    frames = np.stack(frames)
    t = np.arange(n) / fps
    t = np.delete(t, [50, 51])  # two frames dropped
    t = np.insert(t, 300, t[299])  # one duplicated
    frames = frames[: len(t)]
    qc = StreamingQC(48, 64, reference_s=3.0, block_s=5.0, min_confidence=0.5, confidence_measure="p")
    conf = np.where((np.arange(len(t)) > 350) & (np.arange(len(t)) < 380), 0.2, 0.9)
    for a in range(0, len(t), 64):
        qc.update(frame_stats(frames[a : a + 64]), t[a : a + 64], conf[a : a + 64])
    r = qc.summary(t, timestamps_known=True, fps=fps)
    assert r["frames"]["num_dropped"] == 2 and r["frames"]["num_duplicated"] == 1
    assert r["brightness"]["drift_relative"] > 0.3
    assert r["blur"]["blurred_frames"] == 40 and r["blur"]["num_spans"] == 1
    assert r["blur"]["spans_s"] == [[pytest.approx(t[100]), pytest.approx(t[139])]]
    shift = r["crop_drift"]["max_shift_px"]
    assert 5.0 < shift < 7.0  # the 6-pixel slide, measured on the thumbnails
    late = [s for s in r["crop_drift"]["shift_px"] if s["start_s"] >= 10.0]
    assert late and all(abs(s["dx"] - 6) < 1.0 for s in late)
    assert r["low_confidence"]["frames"] == 29 and r["low_confidence"]["num_spans"] == 1
    assert (
        not r["ok"] and any("brightness" in f for f in r["flags"]) and any("moved" in f for f in r["flags"])
    )
    assert spans(np.array([1, 1, 0, 1], bool), np.arange(4.0), min_frames=2) == [[0.0, 1.0]]


def test_truncated_timestamps_and_container_counts(world, tmp_path, capsys):
    """A timestamps file listing more frames than the video decodes: processed, flagged as truncated."""
    session = tmp_path / "m09" / "s01"
    write_session(tmp_path, animal="m09", num_frames=60, size=SIZE)
    ts = session / "face_timestamps.csv"
    ts.write_text(ts.read_text() + "".join(f"{i},{i / 20:.6f}\n" for i in range(60, 70)))
    out = tmp_path / "pred"
    assert run_cli(session, "--prototypes", world["protos"], "--out", out, "--no-plot") == 0
    err = capsys.readouterr().err
    assert "decoded 60 of 70 frames (face_timestamps.csv lists 70)" in err
    s = json.loads((out / "m09_s01.json").read_text())
    assert s["decoding"] == {
        "decoded_frames": 60,
        "expected_frames": 70,
        "truncated": True,
        "missing_frames": 10,
    }
    # fewer timestamps than frames: the frames cannot be timed, so the video fails
    ts.write_text("frame,time_s\n" + "".join(f"{i},{i / 20:.6f}\n" for i in range(50)))
    assert run_cli(session, "--prototypes", world["protos"], "--out", tmp_path / "p2", "--no-plot") == 2
    assert "timestamps do not line up" in capsys.readouterr().err


# -- real faces ----------------------------------------------------------------------------------
def test_predict_on_real_face_frames(real_data_dir, tmp_path):
    names = ["img0051", "img0076", "img0888", "img3050", "img0067", "img0107"]
    frames = [cv2.imread(str(real_data_dir / "facemap_face_frames" / f"{n}.png")) for n in names]
    assert all(f is not None for f in frames)
    h, w = frames[0].shape[:2]
    video = tmp_path / "face.avi"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (w, h), True)
    for f in frames:
        vw.write(f)
    vw.release()
    crop = (100, 50, 640, 480)
    with VideoReader(video, crop=crop) as vr:
        decoded = vr.read()
    feats = hog(decoded)
    protos = Prototypes(
        matrix=np.stack([feats[:3].mean(0), feats[3:].mean(0)]),
        names=["neutral", "pain"],
        hog={},
        frame_size=(480, 640),
        crop=crop,
    )
    protos.save(tmp_path / "real.npz")
    out = tmp_path / "pred"
    assert run_cli(video, "--prototypes", tmp_path / "real.npz", "--out", out, "--overlay") == 0
    sim = scores_of(out / "face.csv", "similarity")
    np.testing.assert_allclose(sim, pearson_similarity(feats, protos.matrix.astype(np.float64)), atol=5e-6)
    s = json.loads((out / "face.json").read_text())
    assert s["frames"] == 6 and s["fps"] == pytest.approx(30.0) and s["crop"] == list(crop)
    assert s["qc"]["frames"] is None  # no timestamps file
    assert s["qc"]["blur"]["median"] > 0 and np.isfinite(s["qc"]["crop_drift"]["similarity_median"])
    cap = cv2.VideoCapture(str(out / "face.overlay.mp4"))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 6
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (640, 480)


# -- GPU -----------------------------------------------------------------------------------------
@pytest.mark.gpu
def test_cuda_gives_the_cpu_scores(world, ckpts, tmp_path):
    cases = [
        (world["sessions"][0], ["--prototypes", world["protos"]], "m01_s01", "similarity"),
        (ckpts["dataset"] / "m02" / "s01", ["--ckpt", ckpts["cnn"]], "m02_s01", "prob"),
    ]
    for session, model, stem, prefix in cases:
        for device in ("cpu", "cuda"):
            assert run_cli(session, *model, "--out", tmp_path / device, "--device", device, "--no-plot") == 0
        a, b = (scores_of(tmp_path / d / f"{stem}.csv", prefix) for d in ("cpu", "cuda"))
        np.testing.assert_allclose(a, b, atol=1e-4)
        qa, qb = (json.loads((tmp_path / d / f"{stem}.json").read_text())["qc"] for d in ("cpu", "cuda"))
        assert qa["blur"] == qb["blur"]  # QC statistics are computed on the CPU in both cases
