"""Every command keeps the same promises as ``mouseemo predict``: bad input is one error line and no
files; argument values cannot make memory grow without bound; reruns replace the whole output set;
an interrupt at any moment leaves only complete files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from mouseemo.cli import main
from tests import test_safe_outputs
from tests.helpers import label_frames, write_video
from tests.test_safe_inputs import _one_error_line

REPO = Path(__file__).resolve().parents[1]
SIZE = (48, 64)


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}


protos = test_safe_outputs.protos  # the prototypes fixture, built once per module


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "face.mp4", label_frames(np.arange(30) % 7, SIZE))


# -- predict: a rerun replaces the whole output set ----------------------------------------------
def test_predict_rerun_removes_its_own_outputs_this_run_does_not_write(tmp_path, protos, video):
    out = tmp_path / "out"
    base = ["predict", str(video), "--prototypes", str(protos), "--out", str(out), "--quiet"]
    assert main(base) == 0
    assert sorted(p.name for p in out.glob("face*")) == ["face.csv", "face.json", "face.png"]
    (out / "face.notes.txt").write_text("mine\n")  # the user's own file beside the outputs
    assert main([*base, "--overwrite", "--no-plot"]) == 0
    assert sorted(p.name for p in out.glob("face*")) == ["face.csv", "face.json", "face.notes.txt"]
    # a foreign face.png (not listed by any run) is left alone by a rerun that does not write it
    (out / "face.png").write_bytes(b"someone's plot")
    assert main([*base, "--overwrite", "--no-plot"]) == 0
    assert (out / "face.png").read_bytes() == b"someone's plot"


# -- explain: --frames is checked against the video without listing every frame ------------------
def test_explain_huge_frame_range_fails_fast_naming_the_video_length(tmp_path, protos, video):
    import resource

    def limit_memory():  # a list of 10^8 frame numbers would need gigabytes
        resource.setrlimit(resource.RLIMIT_DATA, (3 << 30, 3 << 30))

    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "mouseemo", "explain", str(video), "--prototypes", str(protos),
         "--frames", "0-100000000", "--out", str(out)],
        capture_output=True, text=True, env=_env(), timeout=120, preexec_fn=limit_memory,
    )  # fmt: skip
    line = _one_error_line(proc.returncode, proc.stderr)
    assert "frame 30 is outside" in line and "it has 30 frames" in line, line
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        ("-5", "--frames must be >= 0"),
        ("2--5", "--frames must be >= 0"),
        ("9-3", "low to high"),
        ("99999999999999999999999", "it has 30 frames"),
        ("0-99999999999999999999", "it has 30 frames"),
        ("1,x", "--frames must be frame numbers"),
        (",", "names no frame"),
    ],
)
def test_explain_bad_frame_lists_are_one_line_and_no_files(tmp_path, capsys, protos, video, frames, message):
    out = tmp_path / "out"
    code = main(["explain", str(video), "--prototypes", str(protos), "--frames", frames, "--out", str(out)])
    line = _one_error_line(code, capsys.readouterr().err)
    assert message in line, line
    assert not out.exists() or not any(out.iterdir())


def test_explain_refuses_too_many_frames_and_integration_steps(tmp_path, capsys, protos, video, monkeypatch):
    from mouseemo.inference.explain import frames

    monkeypatch.setattr(frames, "MAX_FRAMES", 10)
    out = tmp_path / "out"
    base = ["explain", str(video), "--prototypes", str(protos), "--out", str(out)]
    line = _one_error_line(main([*base, "--frames", "0-20"]), capsys.readouterr().err)
    assert "names 21 frames" in line and "at most 10" in line, line
    line = _one_error_line(
        main([*base, "--frames", "0", "--ig-steps", "10000000000"]), capsys.readouterr().err
    )
    assert "--ig-steps must be 1 to" in line, line
    assert not out.exists() or not any(out.iterdir())


def test_explain_rerun_removes_the_frames_the_earlier_run_drew(tmp_path, protos, video):
    out = tmp_path / "out"
    base = ["explain", str(video), "--prototypes", str(protos), "--out", str(out), "--quiet"]
    assert main([*base, "--frames", "0-2"]) == 0
    (out / "face_frame000009.png").write_bytes(b"someone's figure")  # not listed by any run
    assert main([*base, "--frames", "1", "--overwrite"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "face.explain.npz",
        "face_frame000001.png",
        "face_frame000009.png",
        "face_prototypes.png",
    ]
    with np.load(out / "face.explain.npz", allow_pickle=False) as npz:
        assert list(npz["frames"]) == [1]


# -- explain interrupted while it writes: nothing, or every file complete -------------------------
_SLOW_WRITES = """
import pathlib, sys, time
write = pathlib.Path.write_bytes
def slow(self, data):
    n = write(self, data)
    time.sleep(0.4)
    return n
pathlib.Path.write_bytes = slow
from mouseemo.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_explain_interrupted_mid_write_leaves_only_complete_outputs(tmp_path, protos, video, sig, code):
    out = tmp_path / "out"
    args = ["explain", str(video), "--prototypes", str(protos), "--frames", "0-5", "--out", str(out)]
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITES, *args], env=_env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (out.is_dir() and any(out.glob(".*.tmp*"))):
            time.sleep(0.02)  # until the first file is being written
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.6)  # a file or two written, the others not yet
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert "Traceback" not in err
    names = sorted(p.name for p in out.iterdir())
    assert not [n for n in names if ".tmp" in n], names
    # all or nothing: no figure without the .npz that records it
    if names:
        with np.load(out / "face.explain.npz", allow_pickle=False) as npz:
            frames = list(npz["frames"])
        assert names == sorted(
            ["face.explain.npz", "face_prototypes.png", *(f"face_frame{f:06d}.png" for f in frames)]
        )
        for n in names:
            if n.endswith(".png"):
                assert cv2.imread(str(out / n)) is not None, n
    # so a plain rerun finds nothing in its way, or nothing to redo
    rerun = main(["explain", str(video), "--prototypes", str(protos), "--frames", "0-5", "--out", str(out),
                  "--quiet"] + (["--overwrite"] if names else []))  # fmt: skip
    assert rerun == 0


# -- train: numbers that would crash deep inside, or never stop ----------------------------------
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.batch_size=0", "data.batch_size must be >= 1; got 0"),
        ("trainer.max_epochs=-1", "trainer.max_epochs must be >= 1; got -1"),
        ("trainer.max_epochs=0", "trainer.max_epochs must be >= 1; got 0"),
        ("model.optimizer.lr=0", "model.optimizer.lr must be > 0; got 0"),
    ],
)
def test_train_refuses_bad_numbers_before_anything_runs(tmp_path, override, message):
    proc = subprocess.run(
        [sys.executable, "-m", "mouseemo", "train", override, "trainer.enable_progress_bar=false"],
        capture_output=True, text=True, env={**_env(), "MOUSEEMO_ROOT": str(tmp_path)}, cwd=tmp_path,
        timeout=300,
    )  # fmt: skip
    line = _one_error_line(proc.returncode, proc.stderr)
    assert message in line, line
    assert not (tmp_path / "data").exists()  # stopped before the synthetic data set is generated


# -- neural sessions: embed and correlates --------------------------------------------------------
@pytest.fixture(scope="module")
def joint(tmp_path_factory):
    """A two-animal synthetic data set and a joint encoder trained for one short epoch on it."""
    from mouseemo import tasks
    from mouseemo.data.synthetic import generate_dataset
    from tests.test_configs import compose_cfg

    root = tmp_path_factory.mktemp("joint")
    generate_dataset(root / "data", num_mice=2, minutes=1.0, seed=0, size=(64, 80), num_neurons=40, workers=1)
    over = ["experiment=joint", "data.synthesize=null", "data.image_size=[48,64]",
            "trainer.enable_progress_bar=false", f"data.root={root / 'data'}",
            f"paths.output_dir={root / 'run'}", "trainer.max_epochs=1", "data.window_stride=8"]  # fmt: skip
    metrics = tasks.train(compose_cfg("train", over, root))
    return root / "data", Path(metrics["best_ckpt"] or root / "run" / "checkpoints" / "last.ckpt")


def _copy_session(src: Path, dst: Path, animal: str) -> Path:
    import json
    import shutil

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".cache"))
    meta = json.loads((dst / "session.json").read_text())
    (dst / "session.json").write_text(json.dumps({**meta, "animal": animal}))
    return dst


def test_embed_fit_session_layer_with_no_neurons_is_one_line(joint, tmp_path, capsys):
    data, ckpt = joint
    session = _copy_session(data / "m02" / "s01", tmp_path / "m09" / "s01", "m09")
    iscell = session / "suite2p" / "plane0" / "iscell.npy"
    np.save(iscell, np.zeros_like(np.load(iscell)))  # the curator rejected every ROI
    new, out = tmp_path / "new.ckpt", tmp_path / "e.npz"
    code = main(["embed", str(session), "--ckpt", str(ckpt), "--out", str(out), "--fit-session-layer", str(new),
                 "--cache-dir", str(tmp_path / "cache")])  # fmt: skip
    line = _one_error_line(code, capsys.readouterr().err)
    assert "no ROI is labelled a cell" in line, line
    assert not new.exists() and not out.exists()


def test_embed_new_layer_cannot_replace_the_checkpoint_or_the_embeddings(joint, tmp_path, capsys):
    data, ckpt = joint
    session = str(data / "m02" / "s01")
    for new in (ckpt, tmp_path / "e.npz"):
        code = main(["embed", session, "--ckpt", str(ckpt), "--out", str(tmp_path / "e.npz"),
                     "--fit-session-layer", str(new), "--overwrite"])  # fmt: skip
        line = _one_error_line(code, capsys.readouterr().err)
        assert "--fit-session-layer" in line and "is also" in line, line
    assert not (tmp_path / "e.npz").exists()


def _empty_plane(session: Path) -> None:
    plane = session / "suite2p" / "plane0"
    t = np.load(plane / "F.npy").shape[1]
    for name in ("F", "Fneu", "spks"):
        np.save(plane / f"{name}.npy", np.zeros((0, t), np.float32))
    np.save(plane / "iscell.npy", np.zeros((0, 2)))
    np.save(plane / "stat.npy", np.array([], dtype=object), allow_pickle=True)


def test_correlates_advises_all_rois_only_when_it_was_not_given(joint, tmp_path, capsys):
    data, _ = joint
    session = _copy_session(data / "m01" / "s01", tmp_path / "m01" / "s01", "m01")
    _empty_plane(session)
    base = ["correlates", str(session), "--out", str(tmp_path / "out"), "--no-plot"]
    line = _one_error_line(main(base), capsys.readouterr().err)
    assert "--all-rois" in line, line
    line = _one_error_line(main([*base, "--all-rois"]), capsys.readouterr().err)
    assert "--all-rois" not in line and "no ROI" in line, line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_correlates_rerun_replaces_the_whole_output_set(joint, tmp_path):
    data, _ = joint
    out = tmp_path / "out"
    base = ["correlates", str(data / "m01" / "s01"), "--out", str(out)]
    assert main(base) == 0
    assert (out / "responses.png").is_file() and (out / "examples.png").is_file()
    (out / "notes.txt").write_text("mine\n")
    assert main([*base, "--overwrite", "--no-plot"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["neurons.csv", "notes.txt", "summary.json", "traces.npz"]


@pytest.mark.parametrize(
    "args",
    [
        ["predict", "v.mp4", "--prototypes", "p.npz", "--out", "o", "--batch-size", "100000000"],
        ["hog", "v.mp4", "--out", "o.npy", "--batch-size", "0"],
        ["prototypes", "v.mp4", "--out", "p.npz", "--batch-size", "99999999999"],
        ["correlates", ".", "--out", "o", "--min-overlap", "-5"],
    ],
    ids=["predict-huge-batch", "hog-zero-batch", "prototypes-huge-batch", "correlates-negative-overlap"],
)
def test_out_of_range_numbers_are_one_line_before_any_work(tmp_path, capsys, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    try:
        code = main(args)
    except SystemExit as exc:  # refused by the argument parser
        code = exc.code
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert code == 2 and len(err) == 1 and err[0].startswith("mouseemo: error: "), err
    assert any(w in err[0] for w in ("--batch-size", "--min-overlap")), err
    assert sorted(p.name for p in tmp_path.iterdir()) == []
