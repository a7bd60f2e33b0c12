"""benchmarks/tail_shock_intensity.py on a small synthetic mouse: the two face-free pixel rules read the
frames inside ``--crop`` against the right reference, and a bad ``--crop`` is one error naming the flag."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from mouseemo.data.video import VideoReader
from mouseemo.testing import write_video

REPO = Path(__file__).resolve().parents[1]
CLIPS = {"i0_t0": 0, "i0_t1": 0, "i2_t0": 150, "i2_t1": 150, "i4_t0": 500, "i4_t1": 500}
OFFSET = {"i0_t0": 0, "i0_t1": 30, "i2_t0": -20, "i2_t1": 10, "i4_t0": 5, "i4_t1": -10}  # posture


@pytest.fixture(scope="module")
def bench():
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))  # the script imports its sibling _harness
    try:
        spec = importlib.util.spec_from_file_location(
            "tail_shock_intensity", REPO / "benchmarks" / "tail_shock_intensity.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    return module


@pytest.fixture(scope="module")
def mouse(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mice") / "M1"
    root.mkdir()
    rng = np.random.default_rng(0)
    texture = rng.integers(60, 140, (140, 232)).astype(np.float32)
    rows = ["clip,current_uA,intensity_level,repeat"]
    for k, (name, current) in enumerate(CLIPS.items()):
        frames = np.repeat(texture[None] + OFFSET[name], 100, axis=0)
        frames[40:80, 40:64, 24:48] += current / 10  # the head moves with the current, inside the crop
        frames[40:80, 20:120, 150:230] += 60  # the tail moves in every trial, outside the crop
        frames += rng.normal(0, 2, frames.shape)
        write_video(root / f"{name}.mp4", np.clip(frames, 0, 255).astype(np.uint8))
        rows.append(f"{name}.mp4,{current},{name[1]},{k}")
    (root / "trials.csv").write_text("\n".join(rows) + "\n")
    (root / "events.csv").write_text("onset,duration,label\n2.00,2.0,pain\n")
    return root


def _gray(path: Path) -> np.ndarray:
    with VideoReader(path, timestamps=None) as vr:
        return vr.read().astype(np.float32)


def _expected(mouse: Path, crop) -> dict[str, tuple[float, float]]:
    """(trial, session) pixel change per clip, computed here from the decoded frames."""
    x, y, w, h = crop if crop else (0, 0, 232, 140)
    clips = {n: _gray(mouse / f"{n}.mp4")[:, y : y + h, x : x + w] for n in CLIPS}
    session = np.median(np.concatenate([f[:40] for f in clips.values()]), axis=0)
    return {
        n: (np.abs(f[40:80] - np.median(f[:40], axis=0)).mean(), np.abs(f[40:80] - session).mean())
        for n, f in clips.items()
    }


def _run(bench, mouse: Path, tmp_path: Path, *flags: str) -> dict[str, dict]:
    out = tmp_path / "readouts.csv"
    argv = ["--src", str(mouse), "--proto-trials", "i4_t0", "--k", "5", "--csv", str(out), *flags]
    assert bench.main(argv) == 0
    with open(out, newline="") as fh:
        return {Path(r["clip"]).stem: r for r in csv.DictReader(fh)}


@pytest.mark.parametrize("crop", [None, (8, 32, 60, 52)], ids=["crop-none", "crop-default"])
def test_pixel_rules_read_the_crop_against_their_references(bench, mouse, tmp_path, crop):
    rows = _run(bench, mouse, tmp_path, *([] if crop else ["--crop", "none"]))
    assert set(rows) == set(CLIPS) - {"i4_t0"}  # the prototype clip is not scored
    expected = _expected(mouse, crop)
    for name, row in rows.items():
        trial, session = expected[name]
        assert float(row["pixel_change_trial"]) == pytest.approx(trial, rel=1e-4), name
        assert float(row["pixel_change_session"]) == pytest.approx(session, rel=1e-4), name
    # a posture offset is no change from the trial's own baseline, but is one from the session's
    assert float(rows["i0_t1"]["pixel_change_session"]) > float(rows["i0_t1"]["pixel_change_trial"]) + 10
    for key in ("intensity", "departure"):
        assert all(row[key] != "" for row in rows.values())


def test_a_bad_crop_is_one_error_naming_the_flag(bench, mouse, tmp_path, capsys):
    for bad in ("200,100,60,52", "1,2,3"):
        assert bench.main(["--src", str(mouse), "--crop", bad]) == 2
        err = capsys.readouterr().err
        assert "--crop" in err and bad in err and "Traceback" not in err
