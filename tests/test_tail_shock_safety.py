"""``mouseemo tail-shock build`` keeps predict's promises: names from folders and tables stay inside
``--out``, nothing it did not write is replaced without ``--overwrite``, every input is checked
before the first file is written, and an interrupt or a kill leaves the output as it was."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mouseemo.cli import main
from mouseemo.data import tail_shock
from mouseemo.data.tail_shock import is_built_session
from mouseemo.errors import DataError
from tests.helpers import fake_tail_shock_mouse

REPO = Path(__file__).resolve().parents[1]


def build(capsys, *args) -> tuple[int, str]:
    code = main(["tail-shock", "build", *[str(a) for a in args]])
    return code, capsys.readouterr().err


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes (hidden ones too)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def one_error_line(err: str, *words: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("mouseemo: error: "), err
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_src_dotdot_names_the_real_folder_and_writes_nothing_outside_out(tmp_path, capsys):
    mouse = fake_tail_shock_mouse(tmp_path / "src", "m1")
    (mouse / "sub").mkdir()
    out = tmp_path / "data" / "out"
    victim = tmp_path / "data" / "tail_shock"  # what <out>/../tail_shock would have replaced
    victim.mkdir(parents=True)
    (victim / "notes.txt").write_text("mine\n")
    code, err = build(capsys, "--src", mouse / "sub" / "..", "--out", out)
    assert code == 0, err
    assert (victim / "notes.txt").read_text() == "mine\n"
    assert is_built_session(out / "m1" / "tail_shock")
    assert json.loads((out / "m1" / "tail_shock" / "session.json").read_text())["animal"] == "m1"


def test_src_dot_takes_the_current_folders_name(tmp_path, capsys, monkeypatch):
    mouse = fake_tail_shock_mouse(tmp_path / "src", "ECO_9")
    monkeypatch.chdir(mouse)
    code, err = build(capsys, "--src", ".", "--out", tmp_path / "out")
    assert code == 0, err
    assert json.loads((tmp_path / "out/ECO_9/tail_shock/session.json").read_text())["animal"] == "ECO_9"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ECO_9"]


def test_a_folder_name_that_is_no_clean_component_is_refused(tmp_path, capsys):
    fake_tail_shock_mouse(tmp_path / "src", " m1")  # a leading space: not a plain name
    code, err = build(capsys, "--src", tmp_path / "src" / " m1", "--out", tmp_path / "out")
    assert code == 2
    one_error_line(err, "mouse name")
    assert not (tmp_path / "out").exists()


def test_foreign_session_folder_is_kept_without_overwrite(tmp_path, capsys):
    fake_tail_shock_mouse(tmp_path / "src", "m1")
    out = tmp_path / "out"
    foreign = out / "m1" / "tail_shock"
    foreign.mkdir(parents=True)
    (foreign / "notes.txt").write_text("my notes\n")
    before = snapshot(tmp_path / "out")
    code, err = build(capsys, "--src", tmp_path / "src", "--out", out)
    assert code == 2
    one_error_line(err, str(foreign), "--overwrite")
    assert snapshot(tmp_path / "out") == before
    code, err = build(capsys, "--src", tmp_path / "src", "--out", out, "--overwrite")
    assert code == 0, err
    assert is_built_session(foreign) and not (foreign / "notes.txt").exists()


def test_own_session_is_rebuilt_but_not_once_a_user_added_a_file(tmp_path, capsys):
    fake_tail_shock_mouse(tmp_path / "src", "m1")
    out = tmp_path / "out"
    assert build(capsys, "--src", tmp_path / "src", "--out", out)[0] == 0
    session = out / "m1" / "tail_shock"
    assert build(capsys, "--src", tmp_path / "src", "--out", out, "--currents", "500")[0] == 0
    assert json.loads((session / "session.json").read_text())["currents_uA"] == [500.0]
    assert sorted(p.name for p in (out / "m1").iterdir()) == ["tail_shock"]  # no old or temp folders
    (session / "notes.txt").write_text("annotated\n")
    code, err = build(capsys, "--src", tmp_path / "src", "--out", out)
    assert code == 2
    one_error_line(err, "--overwrite")
    assert (session / "notes.txt").read_text() == "annotated\n"


def test_a_missing_clip_in_the_second_mouse_writes_no_mouse(tmp_path, capsys):
    fake_tail_shock_mouse(tmp_path / "src", "m1")
    m2 = fake_tail_shock_mouse(tmp_path / "src", "m2")
    (m2 / "c3.mp4").unlink()
    code, err = build(capsys, "--src", tmp_path / "src", "--out", tmp_path / "out")
    assert code == 2
    one_error_line(err, "c3.mp4")
    assert not (tmp_path / "out").exists() or snapshot(tmp_path / "out") == {}


def test_an_existing_build_stays_whole_when_a_later_mouse_fails(tmp_path, capsys):
    fake_tail_shock_mouse(tmp_path / "src", "m1")
    m2 = fake_tail_shock_mouse(tmp_path / "src", "m2")
    out = tmp_path / "out"
    assert build(capsys, "--src", tmp_path / "src", "--out", out)[0] == 0
    before = snapshot(out)
    (m2 / "c3.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video")
    code, err = build(capsys, "--src", tmp_path / "src", "--out", out, "--currents", "500")
    assert code == 2
    one_error_line(err, "c3.mp4")
    assert snapshot(out) == before


def test_a_clip_that_breaks_while_decoding_replaces_no_mouse(tmp_path, capsys, monkeypatch):
    """A clip whose first frame decodes but whose body does not: m1 is written completely before m2
    fails, and still nothing is renamed into place."""
    fake_tail_shock_mouse(tmp_path / "src", "m1")
    fake_tail_shock_mouse(tmp_path / "src", "m2")
    out = tmp_path / "out"
    assert build(capsys, "--src", tmp_path / "src", "--out", out)[0] == 0
    before = snapshot(out)
    read = tail_shock.VideoReader.read

    def broken_in_m2(self, *a, **kw):
        if self.path.parent.name == "m2" and self.path.name == "c2.mp4":
            raise DataError(f"video is corrupt after frame 3: {self.path}")
        return read(self, *a, **kw)

    monkeypatch.setattr(tail_shock.VideoReader, "read", broken_in_m2)
    code, err = build(capsys, "--src", tmp_path / "src", "--out", out, "--currents", "500")
    assert code == 2
    one_error_line(err, "c2.mp4")
    assert snapshot(out) == before
    assert _temps(out) == []


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda rows: rows + [rows[-1]], ["listed twice", "c3.mp4"]),
        (lambda rows: rows[:-1] + ["../m2/c3.mp4,500,1,3"], ["inside the mouse's folder", "../m2/c3.mp4"]),
        (lambda rows: rows[:-1] + ["{abs},500,1,3"], ["inside the mouse's folder"]),
        (lambda rows: rows[:-1] + ["c3.mp4,nan,1,3"], ["current_uA", "nan"]),
        (lambda rows: rows[:-1] + ["c3.mp4,-300,1,3"], ["current_uA", "-300"]),
    ],
    ids=["duplicate", "dotdot", "absolute", "nan", "negative"],
)
def test_bad_clip_rows_are_one_error_before_anything_is_written(tmp_path, capsys, edit, words):
    m1 = fake_tail_shock_mouse(tmp_path / "src", "m1")
    m2 = fake_tail_shock_mouse(tmp_path / "src", "m2")
    lines = (m1 / "trials.csv").read_text().splitlines()
    rows = [r.replace("{abs}", str(m2 / "c3.mp4")) for r in edit(lines[1:])]
    (m1 / "trials.csv").write_text("\n".join([lines[0], *rows]) + "\n")
    code, err = build(capsys, "--src", tmp_path / "src", "--out", tmp_path / "out", "--currents", "0,500")
    assert code == 2
    one_error_line(err, "trials.csv", *words)
    assert not (tmp_path / "out").exists() or snapshot(tmp_path / "out") == {}


@pytest.mark.parametrize("kind", ["empty", "no_trials"])
def test_a_folder_that_is_no_mouse_is_named_not_skipped(tmp_path, capsys, kind):
    fake_tail_shock_mouse(tmp_path / "src", "m1")
    other = tmp_path / "src" / "m2"
    other.mkdir()
    if kind == "no_trials":
        (other / "events.csv").write_text("onset,duration,label\n2,2,pain\n")
    (tmp_path / "src" / ".ipynb_checkpoints").mkdir()  # hidden folders are passed over
    code, err = build(capsys, "--src", tmp_path / "src", "--out", tmp_path / "out")
    assert code == 2
    one_error_line(err, "m2", "trials.csv")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--currents", "nan"],
        ["--currents", "0,-5"],
        ["--fps", "inf"],
        ["--fps", "0"],
        ["--crop", "0,0,99,99"],
    ],
)
def test_bad_options_are_one_error(tmp_path, capsys, args):
    fake_tail_shock_mouse(tmp_path / "src", "m1")
    try:
        code, err = build(capsys, "--src", tmp_path / "src", "--out", tmp_path / "out", *args)
    except SystemExit as exc:  # a usage error, found by the argument parser
        code, err = exc.code, capsys.readouterr().err
    assert code == 2
    one_error_line(err, args[0].lstrip("-"))
    assert not (tmp_path / "out").exists()


def _slow_source(root: Path) -> Path:
    """Two mice whose build takes a few seconds (large, long clips)."""
    for name in ("m1", "m2"):
        fake_tail_shock_mouse(root, name, currents=(0, 500, 0, 500, 0, 500), frames=150, size=(640, 480))
    return root


def _temps(out: Path) -> list[Path]:
    return [p for p in out.rglob(".*") if "mouseemo-" in p.name]


def _start(src: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "mouseemo",
        "tail-shock",
        "build",
        "--src",
        str(src),
        "--out",
        str(out),
        *extra,
    ]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_temp(proc: subprocess.Popen, out: Path, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if any(p.suffix == ".tmp" for p in _temps(out)) if out.exists() else False:
            return
        if proc.poll() is not None:
            pytest.fail(f"the build ended before it was interrupted: {proc.communicate()}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail("no temporary session folder appeared")


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_interrupt_leaves_the_previous_build_whole(tmp_path, sig, code):
    src = _slow_source(tmp_path / "src")
    out = tmp_path / "out"
    proc = _start(src, out, "--currents", "500")
    assert proc.wait(timeout=300) == 0, proc.communicate()
    before = snapshot(out)
    proc = _start(src, out)
    _wait_for_temp(proc, out)
    time.sleep(0.3)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert snapshot(out) == before
    assert _temps(out) == []


def test_a_killed_build_leaves_nothing_a_rerun_trips_over(tmp_path):
    src = _slow_source(tmp_path / "src")
    out = tmp_path / "out"
    proc = _start(src, out)
    _wait_for_temp(proc, out)
    proc.kill()
    proc.wait(timeout=60)
    assert not (out / "m1" / "tail_shock").exists()
    assert _temps(out)  # SIGKILL leaves its temporary folder behind ...
    proc = _start(src, out)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert _temps(out) == []  # ... which the rerun removes
    assert all(is_built_session(out / m / "tail_shock") for m in ("m1", "m2"))


@pytest.mark.parametrize(
    ("sig", "code", "word"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")]
)
def test_a_signal_while_the_command_loads_is_one_line(tmp_path, sig, code, word):
    """Ctrl-C or SIGTERM while the subcommands' modules load (seconds on a busy machine) stops with
    one line, not an import traceback; a run that finished first still gave its one error line."""
    proc = _start(tmp_path / "missing", tmp_path / "out")
    time.sleep(1.0)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert "Traceback" not in err, err
    if proc.returncode == 2:  # it finished before the signal came
        one_error_line(err, "not found")
    else:
        assert proc.returncode == code and err.strip() == f"mouseemo: {word}", (proc.returncode, err)
    assert not (tmp_path / "out").exists()
