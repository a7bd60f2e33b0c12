"""Outputs are safe with inputs from other people: names from files cannot lead outside ``--out``,
files mouseemo did not write are not replaced, killed runs leave nothing behind, Ctrl-C and SIGTERM
stop queued work at once, and output files respect the umask."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from mouseemo.cli import main
from mouseemo.inference.inputs import resolve_inputs
from mouseemo.inference.prototypes import build_from_videos
from mouseemo.utils.io import atomic_path, dumps_json, remove_stale_temps, safe_component
from tests.helpers import label_frames, write_session, write_video

REPO = Path(__file__).resolve().parents[1]
SIZE = (48, 64)


@pytest.fixture(scope="module")
def protos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("protos")
    session = write_session(root / "data", num_frames=140, size=SIZE)
    path = root / "protos.npz"
    build_from_videos(resolve_inputs([str(session)], None, True), hog={"pixels_per_cell": 16}, k=5).save(path)
    return path


def files_under(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def predict(*args) -> int:
    return main(["predict", *[str(a) for a in args], "--quiet"])


# -- names from files ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "expected"),
    [("m01", "m01"), ("../../x", "x"), ("..", "unnamed"), (".hidden", "hidden"), ("a/b\\c", "a_b_c"),
     ("trial 3", "trial 3"), ("_x", "_x"), ("a..b", "a_b"), ("/abs/p", "abs_p")],
)  # fmt: skip
def test_safe_component(name, expected):
    out = safe_component(name)
    assert out == expected
    assert "/" not in out and "\\" not in out and ".." not in out and not out.startswith(".")


def test_manifest_and_session_names_cannot_escape_out(tmp_path, protos):
    data = tmp_path / "data"
    s1 = write_session(data, animal="m01", num_frames=40, size=SIZE)
    s2 = write_session(data, animal="m02", num_frames=40, size=SIZE, seed=1)
    # a session.json whose names climb out of the output folder
    (s2 / "session.json").write_text(json.dumps({"animal": "../../../evil", "session": "../s", "fps": 20}))
    (data / "manifest.csv").write_text(
        f"animal,session,path\n../../x,s01,{s1.relative_to(data)}\nm02,,{s2.relative_to(data)}\n"
    )
    out = tmp_path / "a" / "b" / "out"
    # what the old stems would have replaced
    victim = tmp_path / "a" / "x_s01.csv"
    victim.parent.mkdir(parents=True)
    victim.write_text("precious\n")
    before = files_under(tmp_path)
    assert predict(data / "manifest.csv", "--prototypes", protos, "--out", out) == 0
    after = files_under(tmp_path)
    new = sorted(set(after) - set(before))
    assert new and all(n.startswith("a/b/out/") for n in new), new
    assert victim.read_text() == "precious\n"
    names = sorted(p.name for p in out.iterdir() if p.suffix == ".csv")
    assert names == ["m02___s.csv", "x_s01.csv"]
    # the session folder alone: its session.json names the stem
    assert predict(s2, "--prototypes", protos, "--out", tmp_path / "out2") == 0
    assert sorted(p.name for p in (tmp_path / "out2").glob("*.csv")) == ["evil___s.csv"]
    assert not (tmp_path / "evil_s.csv").exists() and not list(tmp_path.glob("*evil*"))


# -- nothing foreign is replaced -----------------------------------------------------------------
def test_foreign_file_is_not_replaced_without_overwrite(tmp_path, protos, capsys):
    video = write_video(tmp_path / "good.mp4", label_frames(np.arange(30) % 7, SIZE))
    out = tmp_path / "out"
    out.mkdir()
    (out / "good.csv").write_text("someone's table\n")
    assert predict(video, "--prototypes", protos, "--out", out) == 2
    err = capsys.readouterr().err
    assert "refusing to replace" in err and "good.csv" in err and "--overwrite" in err
    assert (out / "good.csv").read_text() == "someone's table\n"
    assert not (out / "good.json").exists()
    # a foreign summary JSON does not make the video look finished either
    (out / "good.json").write_text('{"mine": true}\n')
    (out / "good.png").write_bytes(b"not a plot")
    assert predict(video, "--prototypes", protos, "--out", out) == 2
    assert (out / "good.json").read_text() == '{"mine": true}\n'
    assert predict(video, "--prototypes", protos, "--out", out, "--overwrite") == 0
    assert (out / "good.csv").read_text().startswith("frame,time_s,label")
    # mouseemo's own outputs are redone without --overwrite when a new output kind is wanted
    assert predict(video, "--prototypes", protos, "--out", out, "--no-plot") == 0  # finished: skipped
    (out / "good.json").unlink()  # as if killed between two renames: the marker still owns the CSV
    assert predict(video, "--prototypes", protos, "--out", out) == 0
    assert json.loads((out / "good.json").read_text())["frames"] == 30


def test_hog_refuses_existing_out_without_overwrite(tmp_path, capsys):
    video = write_video(tmp_path / "v.avi", label_frames(np.arange(12) % 7, SIZE), fourcc="MJPG")
    out = tmp_path / "feats.npy"
    out.write_bytes(b"someone's features")
    args = ["hog", str(video), "--out", str(out), "--pixels-per-cell", "16", "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "exists" in err and "--overwrite" in err
    assert out.read_bytes() == b"someone's features"
    assert main([*args, "--overwrite"]) == 0
    assert np.load(out).shape[0] == 12
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temp_files_of_killed_runs_are_removed(tmp_path, protos):
    out = tmp_path / "out"
    with atomic_path(out / "x.csv") as tmp:  # the name a write of this process's gets
        name = tmp.name
    host = name.split(".mouseemo-")[1].split("-")[0]
    stale = out / f".m01_s01.mouseemo-{host}-{_dead_pid()}-abc123.tmp.csv"
    stale.write_text("half a table")
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as alive:
        try:
            live = out / f".m02_s01.mouseemo-{host}-{alive.pid}-def456.tmp.csv"
            live.write_text("being written")
            other_host = out / f".m03.mouseemo-otherhost-{_dead_pid()}-x.tmp.csv"
            other_host.write_text("?")
            foreign = out / ".notes.tmp"
            foreign.write_text("not ours")
            video = write_video(tmp_path / "v.mp4", label_frames(np.arange(20) % 7, SIZE))
            assert predict(video, "--prototypes", protos, "--out", out) == 0
            assert not stale.exists()
            assert live.exists() and other_host.exists() and foreign.exists()
            assert remove_stale_temps(out) == []
        finally:
            alive.kill()


# -- bad numbers and --out -----------------------------------------------------------------------
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_numbers_are_refused(tmp_path, protos, capsys, value):
    video = write_video(tmp_path / "v.mp4", label_frames(np.arange(10) % 7, SIZE))
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "predict",
                str(video),
                "--prototypes",
                str(protos),
                "--out",
                str(tmp_path / "o"),
                "--margin",
                value,
            ]
        )
    assert exc.value.code == 2
    assert "--margin" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_summary_json_is_strict():
    text = dumps_json({"a": float("nan"), "b": [np.float32("inf"), 1.5], "c": np.int64(3)})

    def refuse(name):
        raise ValueError(name)

    assert json.loads(text, parse_constant=refuse) == {"a": None, "b": [None, 1.5], "c": 3}


def test_out_that_is_a_file_is_named(tmp_path, protos, capsys):
    video = write_video(tmp_path / "v.mp4", label_frames(np.arange(10) % 7, SIZE))
    out = tmp_path / "out.txt"
    out.write_text("x")
    assert predict(video, "--prototypes", protos, "--out", out) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mouseemo: error: --out") and "not a folder" in err and "v.mp4" not in err
    assert predict(video, "--prototypes", protos, "--out", out / "sub") == 2
    assert "--out" in capsys.readouterr().err


# -- permissions ---------------------------------------------------------------------------------
@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_respect_the_umask(tmp_path, protos, umask):
    video = write_video(tmp_path / "v.mp4", label_frames(np.arange(20) % 7, SIZE))
    old = os.umask(umask)
    try:
        assert predict(video, "--prototypes", protos, "--out", tmp_path / "out") == 0
        assert main(["hog", str(video), "--out", str(tmp_path / "h.npy"), "--quiet"]) == 0
    finally:
        os.umask(old)
    files = [*(tmp_path / "out").glob("v.*"), tmp_path / "h.npy"]
    assert len(files) == 4
    for f in files:
        assert f.stat().st_mode & 0o777 == 0o666 & ~umask, f


# -- interrupts ----------------------------------------------------------------------------------
# predict in a child process, each chunk made slow, so that the whole batch would take ~30 s
_CHILD = textwrap.dedent(
    """
    import sys, time
    from mouseemo.inference import pipeline
    rows = pipeline._csv_rows
    def slow(*a):
        time.sleep(0.25)
        return rows(*a)
    pipeline._csv_rows = slow
    from mouseemo.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


@pytest.fixture(scope="module")
def many_sessions(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("many")
    return [write_session(root, animal=f"m{k:02d}", num_frames=96, size=SIZE, seed=k) for k in range(6)]


@pytest.mark.parametrize(("sig", "workers", "code"), [
    (signal.SIGINT, 2, 130), (signal.SIGTERM, 2, 143), (signal.SIGTERM, 1, 143),
])  # fmt: skip
def test_interrupt_stops_queued_work_and_leaves_only_complete_outputs(
    tmp_path, protos, many_sessions, sig, workers, code
):
    out = tmp_path / "out"
    args = ["predict", *map(str, many_sessions), "--prototypes", str(protos), "--out", str(out)]
    args += ["--workers", str(workers), "--batch-size", "8", "--no-plot", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (out.is_dir() and any(out.glob(".*.tmp*"))):
            time.sleep(0.05)  # wait until the first videos are being written
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.5)
        t0 = time.monotonic()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
        stopped_after = time.monotonic() - t0
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert "Traceback" not in err
    # every chunk takes 0.25 s: the running videos stop at their next chunk, the queued never start
    # (the rest of the batch would take ~25 s; 10 s leaves room for a machine busy with other tests)
    assert stopped_after < 10.0, stopped_after
    names = sorted(p.name for p in out.iterdir())
    assert not [n for n in names if ".tmp" in n], names
    done = [n[: -len(".json")] for n in names if n.endswith(".json") and not n.startswith(".")]
    assert len(done) < len(many_sessions)
    assert sorted(n for n in names if n.endswith(".csv")) == sorted(f"{s}.csv" for s in done)
