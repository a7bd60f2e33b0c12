"""benchmarks/der_clips.py cuts a DER montage into the shared tail-shock layout: a synthetic montage whose
tiles each carry their own gray level, a marker square at a known place, a trigger square and a caption."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from mouseemo.data.video import VideoReader

REPO = Path(__file__).resolve().parents[1]
FRAMES = 3
MARK = (64, 96, 16)  # row, column and side of a bright square in every tile (on mp4v's 8-pixel blocks)


@pytest.fixture(scope="module")
def der():
    spec = importlib.util.spec_from_file_location("der_clips", REPO / "benchmarks" / "der_clips.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _level(level: int, repeat: int) -> int:
    return 40 + 5 * (level * 6 + repeat)


def _write(path: Path, frames: np.ndarray, fps: float = 20.0) -> Path:
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h), True)
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def montage(tmp_path_factory) -> Path:
    grid = np.zeros((700, 1400), np.uint8)
    r, c, s = MARK
    for level in range(5):
        for repeat in range(6):
            x = repeat * 1400 // 6  # where the cutter must start the tile
            y = level * 140
            grid[y : y + 140, x : x + 232] = _level(level, repeat)  # black between the tiles
            grid[y + r : y + r + s, x + c : x + c + s] = 250
            grid[y : y + 12, x : x + 12] = 255  # trigger square
            grid[y + 3 : y + 15, x + 156 : x + 228 : 3] = 0  # caption strokes
    frames = np.repeat(cv2.cvtColor(grid, cv2.COLOR_GRAY2BGR)[None], FRAMES, axis=0)
    return _write(tmp_path_factory.mktemp("mt") / "2024-01-01_00-00-00-ECO_9_R0R_F-der.mp4", frames)


def _read(path: Path) -> np.ndarray:
    with VideoReader(path, timestamps=None) as vr:
        return vr.read().astype(np.float64)


def test_cuts_every_tile_into_the_shared_layout(der, montage, tmp_path):
    folder = der.cut_montage(montage, tmp_path / "out")
    assert folder == tmp_path / "out" / "ECO_9_R0R_F"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ECO_9_R0R_F"]  # no temporaries left
    assert (folder / "events.csv").read_text() == "onset,duration,label\n2.00,2.0,pain\n"
    rows = (folder / "trials.csv").read_text().splitlines()
    assert rows[0] == "clip,current_uA,intensity_level,repeat"
    assert rows[1:] == [
        f"i{lv}_t{rp}.mp4,{ua},{lv},{rp}" for lv, ua in enumerate((0, 50, 150, 300, 500)) for rp in range(6)
    ]
    r, c, s = MARK
    for level in range(5):
        for repeat in range(6):
            clip = folder / f"i{level}_t{repeat}.mp4"
            cap = cv2.VideoCapture(str(clip))
            assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(20.0)
            cap.release()
            frames = _read(clip)
            assert frames.shape == (FRAMES, 140, 232), clip.name
            frame = frames[0]
            base = np.median(frame)  # the tile's gray level as the codecs left it
            assert abs(base - _level(level, repeat)) < 8, clip.name
            # the marker square sits exactly where it was put in the tile: a one-pixel shift moves its centre
            ys, xs = np.nonzero(frame > (base + 250) / 2)
            assert abs(ys.mean() - (r + (s - 1) / 2)) < 0.3 and abs(xs.mean() - (c + (s - 1) / 2)) < 0.3, (
                clip.name
            )
            # the tile's own gray level everywhere else (no black edge of a shifted cut), the trigger square
            # and the caption included
            rest = frame.copy()
            rest[r - 8 : r + s + 8, c - 8 : c + s + 8] = base
            assert np.abs(rest - base).mean(axis=0).max() < 8, clip.name  # a black column: about 40
            assert np.abs(frame[:12, :12] - base).mean() < 3, clip.name
            assert np.abs(frame[:18, 150:] - base).mean() < 3, clip.name


def test_paint_tile_copies_the_neighbouring_pixels(der):
    tile = np.arange(140 * 232, dtype=np.int64).reshape(140, 232, 1) % 251
    out = der.paint_tile(tile)
    np.testing.assert_array_equal(out[:12, :12], tile[12:24, 12:24])
    np.testing.assert_array_equal(out[:18, 150:], tile[18:36, 150:])
    keep = np.ones((140, 232), bool)
    keep[:12, :12] = keep[:18, 150:] = False
    np.testing.assert_array_equal(out[keep], tile[keep])
    assert der.tile_origin(4, 5) == (1166, 560) and der.tile_origin(0, 1) == (233, 0)


def test_existing_folder_is_kept_unless_overwrite(der, montage, tmp_path, capsys):
    folder = tmp_path / "ECO_9_R0R_F"
    folder.mkdir()
    (folder / "mine.txt").write_text("x")
    with pytest.raises(FileExistsError, match="`overwrite`"):
        der.cut_montage(montage, tmp_path)
    assert der.main([str(montage), "--out", str(tmp_path)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["mine.txt"]
    assert der.main([str(montage), "--out", str(tmp_path), "--overwrite", "--mouse", "M1"]) == 0
    assert len(list((tmp_path / "M1").glob("*.mp4"))) == 30
    der.cut_montage(montage, tmp_path, overwrite=True)
    assert not (folder / "mine.txt").exists() and (folder / "trials.csv").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ECO_9_R0R_F", "M1"]


def test_bad_montages_are_one_clear_error(der, tmp_path):
    small = _write(tmp_path / "x-ECO_1_A-der.mp4", np.zeros((2, 140, 232, 3), np.uint8))
    with pytest.raises(ValueError, match=r"`montage`.*232x140.*1400x700"):
        der.cut_montage(small, tmp_path / "out")
    slow = _write(tmp_path / "x-ECO_1_B-der.mp4", np.zeros((2, 700, 1400, 3), np.uint8), fps=10)
    with pytest.raises(ValueError, match=r"`montage`.*10 fps"):
        der.cut_montage(slow, tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="`montage`"):
        der.cut_montage(tmp_path / "none-der.mp4", tmp_path / "out")
    with pytest.raises(ValueError, match="no mouse name"):
        der.mouse_name(Path("clip.mp4"))
    assert der.mouse_name(Path("2024-02-23_13-34-47-ECO_3_00B_M-der.mp4")) == "ECO_3_00B_M"
    assert not (tmp_path / "out").exists()
