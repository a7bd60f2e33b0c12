"""`mouseemo live` keeps `mouseemo predict`'s promises, on the real command line: bad input is one
error line (exit 2) before any output file exists, two outputs are never the same file, and Ctrl-C
or SIGTERM at any moment (the warm-up included) leaves a complete CSV and summary whose counts add
up (the live command treats both as a clean stop: exit 0)."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mouseemo.inference.inputs import resolve_inputs
from mouseemo.inference.live import CsvSink, IterableSource, LiveOptions, LiveSession
from mouseemo.inference.prototypes import build_from_videos
from mouseemo.inference.scorers import load_scorer
from tests.helpers import write_session, write_video

REPO = Path(__file__).resolve().parents[1]
SIZE = (64, 96)
FPS = 20.0


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("live_safety")
    session = write_session(root / "data", num_frames=300, size=SIZE, seed=1, fps=FPS)  # 15 s
    protos = root / "protos.npz"
    build_from_videos(resolve_inputs([str(session)], None, True), hog={"pixels_per_cell": 16}, k=5).save(
        protos
    )
    return {"video": session / "face.mp4", "protos": protos}


def start(*args, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    env.pop("MOUSEEMO_DEBUG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "mouseemo", "live", *map(str, args)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def live(*args, cwd: Path) -> tuple[int, list[str]]:
    """Exit status and stderr lines of ``mouseemo live ARGS`` run in ``cwd``."""
    proc = start(*args, cwd=cwd)
    try:
        _, err = proc.communicate(timeout=180)
    finally:
        proc.kill()
    return proc.returncode, err.strip().splitlines()


def one_error(code: int, err: list[str], *words: str) -> None:
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("mouseemo: error: "), err
    assert all(w in err[0] for w in words), err


def rows_of(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def assert_complete(csv_path: Path, summary_path: Path) -> dict:
    """The CSV has one row per scored frame and the summary's counts add up."""
    s = json.loads(summary_path.read_text())
    f = s["frames"]
    rows = rows_of(csv_path)
    frames = [int(r["frame"]) for r in rows]
    assert f["captured"] == f["scored"] + f["dropped"], f
    assert f["scored"] == len(rows) > 0, (f, len(rows))
    assert f["warmup"] == sum(r["warmup"] == "1" for r in rows), f
    assert frames == sorted(set(frames)) and frames[-1] < f["captured"], frames
    assert f["dropped"] == f["captured"] - len(frames)
    assert not [p.name for p in csv_path.parent.iterdir() if ".tmp" in p.name]
    return s


# -- interrupts ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sig", "moment"),
    [(signal.SIGTERM, "warm-up"), (signal.SIGINT, "warm-up"), (signal.SIGTERM, "later"), (signal.SIGINT, "later")],
)  # fmt: skip
def test_interrupt_leaves_a_complete_csv_and_summary(world, tmp_path, sig, moment):
    """The frames captured before the signal, warm-up frames included, are all scored or counted as
    dropped, each scored one has its CSV row, and the summary says why the session stopped."""
    csv_path, summary_path = tmp_path / "live.csv", tmp_path / "live.json"
    reference_s = "10" if moment == "warm-up" else "1"
    proc = start(
        "--video", world["video"], "--prototypes", world["protos"], "--neutral", "own",
        "--reference-s", reference_s, "--csv", csv_path, "--summary", summary_path, cwd=tmp_path,
    )  # fmt: skip
    try:
        lines = []
        # a status line each second: wait for the second one in the warm-up (10 s) or the first
        # one after it (1 s), then signal at once or at a random moment within the next 2 s
        while not (lines and ("(warm-up)" in lines[-1]) == (moment == "warm-up") and len(lines) >= 2):
            line = proc.stderr.readline()
            assert line, (proc.wait(), lines)
            if line.startswith("live "):
                lines.append(line)
        time.sleep(0.3 if moment == "warm-up" else random.uniform(0.0, 2.0))
        proc.send_signal(sig)
        _, rest = proc.communicate(timeout=60)
    finally:
        proc.kill()
    err = "".join(lines) + rest
    assert proc.returncode == 0 and "Traceback" not in err, err
    s = assert_complete(csv_path, summary_path)
    assert s["stop_reason"] == ("terminated (SIGTERM)" if sig == signal.SIGTERM else "interrupted (Ctrl-C)")
    assert s["frames"]["warmup"] > 0 and s["reference"]["source"] == "warm-up"
    if moment == "warm-up":
        assert s["frames"]["scored"] == s["frames"]["warmup"]  # the reference is taken from them
    else:
        assert s["frames"]["scored"] > s["frames"]["warmup"]
    f = s["frames"]
    summary_line = f"captured {f['captured']}, scored {f['scored']}, dropped {f['dropped']}"
    assert summary_line in err


# -- outputs that are the same file --------------------------------------------------------------
@pytest.mark.parametrize(
    ("first", "second"), [("--csv", "--summary"), ("--csv", "--plot"), ("--summary", "--plot")]
)
def test_two_outputs_that_are_the_same_file_are_refused(world, tmp_path, first, second):
    target = tmp_path / "out.file"
    target.write_text("kept\n")
    other = {"--csv": "live.csv", "--summary": "live.json", "--plot": "live.png"}
    args = {**other, first: str(target), second: f"./sub/../{target.name}"}
    (tmp_path / "sub").mkdir()
    code, err = live(
        "--video", world["video"], "--prototypes", world["protos"], "--max-frames", "10",
        "--as-fast-as-possible", "--overwrite", "--quiet", *[x for kv in args.items() for x in kv], cwd=tmp_path,
    )  # fmt: skip
    one_error(code, err, first, second, "same file")
    assert target.read_text() == "kept\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.file", "sub"]


def test_an_output_that_is_an_input_is_refused(world, tmp_path):
    code, err = live(
        "--video", world["video"], "--prototypes", world["protos"], "--csv", world["video"],
        "--overwrite", "--max-frames", "5", "--quiet", cwd=tmp_path,
    )  # fmt: skip
    one_error(code, err, "--video", "--csv", "same file")
    assert world["video"].stat().st_size > 1000


# -- output destinations -------------------------------------------------------------------------
@pytest.mark.parametrize("option", ["--csv", "--summary", "--plot"])
def test_an_output_in_a_folder_that_is_a_file_is_one_error_before_the_session(world, tmp_path, option):
    (tmp_path / "shadow").write_text("a file, not a folder\n")
    args = {"--csv": "live.csv", "--summary": "live.json", "--plot": "live.png", option: "shadow/x.out"}
    code, err = live(
        "--video", world["video"], "--prototypes", world["protos"], "--max-frames", "40", "--no-drop",
        "--quiet", *[x for kv in args.items() for x in kv], cwd=tmp_path,
    )  # fmt: skip
    one_error(code, err, option, "is a file, not a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shadow"]  # nothing ran, nothing written


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in read-only folders")
def test_an_output_in_a_read_only_folder_is_one_error_before_the_session(world, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, err = live(
            "--video", world["video"], "--prototypes", world["protos"], "--csv", "live.csv",
            "--summary", "ro/live.json", "--max-frames", "40", "--quiet", cwd=tmp_path,
        )  # fmt: skip
    finally:
        ro.chmod(0o755)
    one_error(code, err, "--summary", "no permission")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ro"]


def test_missing_output_folders_are_created(world, tmp_path):
    csv_path, summary_path, png = tmp_path / "a/b/live.csv", tmp_path / "c/live.json", tmp_path / "d/live.png"
    code, err = live(
        "--video", world["video"], "--prototypes", world["protos"], "--csv", csv_path,
        "--summary", summary_path, "--plot", png, "--max-frames", "30", "--as-fast-as-possible",
        "--no-drop", "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert code == 0 and err == [], err
    s = assert_complete(csv_path, summary_path)
    assert s["frames"]["scored"] == 30 and png.read_bytes()[:4] == b"\x89PNG"


# -- a session that fails before its first frame leaves no CSV -----------------------------------
def test_a_wrong_frame_size_leaves_no_csv_and_the_rerun_works(world, tmp_path):
    small = write_video(tmp_path / "small.avi", np.full((30, 32, 48), 90, np.uint8), fourcc="MJPG")
    args = ["--prototypes", world["protos"], "--csv", "live.csv", "--max-frames", "10", "--quiet"]
    code, err = live("--video", small, *args, cwd=tmp_path)
    one_error(code, err)
    assert not (tmp_path / "live.csv").exists()
    code, err = live("--video", world["video"], *args, "--as-fast-as-possible", "--no-drop", cwd=tmp_path)
    assert code == 0 and err == [], err
    assert len(rows_of(tmp_path / "live.csv")) == 10


def test_a_reference_of_another_size_is_one_error_before_the_csv(world, tmp_path):
    np.save(tmp_path / "ref.npy", np.full((3, 20, 30), 90, np.uint8))
    code, err = live(
        "--video", world["video"], "--prototypes", world["protos"], "--neutral", "own",
        "--reference", "ref.npy", "--csv", "live.csv", "--summary", "live.json", "--quiet", cwd=tmp_path,
    )  # fmt: skip
    one_error(code, err, "reference", "30x20", "96x64")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref.npy"]


# -- option values -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--queue-size", "0", ("--queue-size", ">= 1")),
        ("--queue-size", "-3", ("--queue-size", ">= 1")),
        ("--reference-s", "-1", ("--reference-s", "> 0")),
        ("--stall-timeout", "0", ("--stall-timeout", "> 0")),
        ("--duration", "-2", ("--duration", "> 0")),
        ("--max-frames", "-5", ("--max-frames", ">= 1")),
        ("--margin", "-0.1", ("--margin", ">= 0")),
        ("--stall-timeout", "inf", ("--stall-timeout", "finite number")),  # refused by argparse
    ],
)
def test_a_bad_option_value_is_one_error_and_no_csv(world, tmp_path, option, value, words):
    code, err = live(
        "--video", world["video"], "--prototypes", world["protos"], "--csv", "live.csv",
        f"{option}={value}", "--quiet", cwd=tmp_path,
    )  # fmt: skip
    one_error(code, err, *words)
    assert list(tmp_path.iterdir()) == []


def test_huge_option_values_run_in_bounded_memory(world, tmp_path):
    """A queue of 10^9 frames, a warm-up of 10^12 s and limits far away allocate nothing up front:
    the session runs to the end of the video, its warm-up ending with the source."""
    csv_path, summary_path = tmp_path / "live.csv", tmp_path / "live.json"
    code, err = live(
        "--video", world["video"], "--prototypes", world["protos"], "--neutral", "own",
        "--queue-size", str(10**9), "--reference-s", "1e12", "--max-frames", str(10**15),
        "--duration", "1e12", "--stall-timeout", "1e12", "--as-fast-as-possible", "--no-drop",
        "--csv", csv_path, "--summary", summary_path, "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert code == 0 and err == [], err
    s = assert_complete(csv_path, summary_path)
    assert s["frames"]["scored"] == s["frames"]["warmup"] == 300 and s["stop_reason"] == "the source ended"
    assert s["frames"]["queue_size"] == 10**9


def test_the_warm_up_holds_bounded_memory(world, tmp_path):
    """However long ``reference_s``, the warm-up ends once its frames fill ``warmup_max_bytes``."""
    frames = [(i / FPS, np.full(SIZE, 100 + i % 50, np.uint8)) for i in range(60)]
    scorer = load_scorer(world["protos"], None, "cpu", neutral="own")
    warnings = []
    opts = LiveOptions(reference_s=1e12, drop=False, status_s=None, warmup_max_bytes=20 * SIZE[0] * SIZE[1])
    sink = CsvSink(tmp_path / "live.csv", scorer.columns)
    summary = LiveSession(IterableSource(frames), scorer, opts, sinks=[sink], warn=warnings.append).run()
    assert summary["reference"]["frames"] == 20 and summary["frames"]["warmup"] == 20
    assert summary["frames"]["scored"] == 60 == len(rows_of(tmp_path / "live.csv"))
    assert len(warnings) == 1 and "warm-up frames reached" in warnings[0]
