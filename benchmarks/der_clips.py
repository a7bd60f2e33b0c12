"""Cut a DER tail-shock montage into one mouse folder of trial clips, in the layout of
``data/real/der_tail_shock/<mouse>/`` (see data/real/SOURCES.md, "Real tail-shock trials").

A montage (``<recording>-<mouse>-der.mp4`` in ``raffaelemazziotti/DER_videos``) is a 1400x700 grid, 20 fps:
rows are the shock current levels 0-4 (0, 50, 150, 300, 500 uA), columns the 6 repeats of a level in
presentation order. Each tile is cut as its own clip ``i<level>_t<repeat>.mp4`` (mp4v, 20 fps, 232x140):

- the tile of level ``L``, repeat ``R`` starts at x = ``R * 1400 // 6``, y = ``L * 140``;
- the trigger square (top-left 12x12) is painted over with the 12x12 block diagonally below-right of it,
  ``[12:24, 12:24]``;
- the "T:.. I:.." caption (top-right, rows 0-17, columns 150-231) is painted over with the 18 rows under it.

With these offsets and this painting rule, clips cut from the montages of the three shared mice match the
shared clips to a fraction of a gray level (mp4v written by OpenCV). Next to the clips go ``trials.csv``
(clip, current_uA, intensity_level, repeat) and ``events.csv`` (``2.00,2.0,pain``: the 2 s after the
shock, which is at frame 40 of every tile).

    python benchmarks/der_clips.py MONTAGE.mp4 [MONTAGE.mp4 ...] --out DIR [--mouse NAME] [--overwrite]

Each montage becomes ``DIR/<mouse>/``; the mouse name is read from the montage's file name
(``2024-02-23_13-34-47-ECO_3_00B_M-der.mp4`` -> ``ECO_3_00B_M``) unless ``--mouse`` gives it. A folder is
written under a temporary name and renamed into place when complete; an existing folder is replaced only
with ``--overwrite``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

MONTAGE_SIZE = (1400, 700)  # width, height
TILE_SIZE = (232, 140)  # width, height
CURRENTS_UA = (0, 50, 150, 300, 500)  # one row of the montage each
REPEATS = 6
FPS = 20.0
TRIGGER = 12  # the trigger square's side, at a tile's top-left
CAPTION_X, CAPTION_H = 150, 18  # the caption covers rows [0, 18) and columns [150, 232) of a tile
TRIALS_HEADER = "clip,current_uA,intensity_level,repeat"
EVENTS_TEXT = "onset,duration,label\n2.00,2.0,pain\n"
_NAME = re.compile(r"^(?:.*?-)?([A-Za-z0-9_]+?)-der$")


def tile_origin(level: int, repeat: int) -> tuple[int, int]:
    """Top-left ``(x, y)`` in the montage of the tile of current level ``level``, repeat ``repeat``."""
    return repeat * MONTAGE_SIZE[0] // REPEATS, level * TILE_SIZE[1]


def paint_tile(tile: np.ndarray) -> np.ndarray:
    """A copy of ``tile`` (``(T, 140, 232, C)`` or ``(140, 232, C)``) with the trigger square and the
    caption painted over with neighbouring pixels."""
    out = tile.copy()
    t, c = TRIGGER, CAPTION_H
    out[..., :t, :t, :] = tile[..., t : 2 * t, t : 2 * t, :]
    out[..., :c, CAPTION_X:, :] = tile[..., c : 2 * c, CAPTION_X:, :]
    return out


def mouse_name(montage: Path) -> str:
    """The mouse named in a montage's file name: ``<date>_<time>-<mouse>-der.mp4`` -> ``<mouse>``."""
    m = _NAME.match(montage.stem)
    if not m:
        raise ValueError(
            f"`montage` {montage.name!r}: no mouse name in the file name (expected "
            "'<recording>-<mouse>-der.mp4'); give it with `mouse`"
        )
    return m.group(1)


def read_montage(path: Path) -> np.ndarray:
    """All frames of a montage, ``(T, 700, 1400, 3)`` uint8 BGR; an error names what does not fit."""
    if not path.is_file():
        raise FileNotFoundError(f"`montage` {str(path)!r} is not a file")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise ValueError(f"`montage` {str(path)!r} cannot be read as a video")
        fps = cap.get(cv2.CAP_PROP_FPS)
        frames = []
        ok, frame = cap.read()
        while ok:
            frames.append(frame)
            ok, frame = cap.read()
    finally:
        cap.release()
    if not frames:
        raise ValueError(f"`montage` {str(path)!r} has no frames")
    h, w = frames[0].shape[:2]
    if (w, h) != MONTAGE_SIZE:
        raise ValueError(
            f"`montage` {str(path)!r} is {w}x{h}; a DER montage is {MONTAGE_SIZE[0]}x{MONTAGE_SIZE[1]}"
        )
    if fps and abs(fps - FPS) > 1e-3:
        raise ValueError(f"`montage` {str(path)!r} runs at {fps:g} fps; a DER montage runs at {FPS:g}")
    return np.stack(frames)


def _write_clip(path: Path, frames: np.ndarray) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, TILE_SIZE, True)
    if not writer.isOpened():
        raise OSError(f"cannot write {str(path)!r} (mp4v)")
    try:
        for frame in frames:
            writer.write(np.ascontiguousarray(frame))
    finally:
        writer.release()


def write_clips(montage: np.ndarray, folder: Path) -> None:
    """Write the 30 clips, ``trials.csv`` and ``events.csv`` of one montage into ``folder`` (which exists)."""
    width, height = TILE_SIZE
    rows = [TRIALS_HEADER]
    for level, current in enumerate(CURRENTS_UA):
        for repeat in range(REPEATS):
            x, y = tile_origin(level, repeat)
            clip = f"i{level}_t{repeat}.mp4"
            _write_clip(folder / clip, paint_tile(montage[:, y : y + height, x : x + width]))
            rows.append(f"{clip},{current},{level},{repeat}")
    (folder / "trials.csv").write_text("\n".join(rows) + "\n")
    (folder / "events.csv").write_text(EVENTS_TEXT)


def cut_montage(montage: str | os.PathLike, out: str | os.PathLike, mouse: str | None = None,
                overwrite: bool = False) -> Path:  # fmt: skip
    """Cut ``montage`` into ``out/<mouse>/`` and return that folder. Written under a temporary name in
    ``out`` and renamed into place once complete; an existing folder is replaced only with ``overwrite``."""
    path = Path(montage)
    name = mouse if mouse is not None else mouse_name(path)
    if not name or name in (".", "..") or "/" in name or os.sep in name:
        raise ValueError(f"`mouse` {name!r} is not one clean folder name")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"`out` {str(out)!r} is not a folder")
    final = out / name
    if final.exists() and not overwrite:
        raise FileExistsError(f"`out` already holds {str(final)!r}; pass `overwrite` to replace it")
    frames = read_montage(path)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=out))
    try:
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the finished folder is an ordinary one
        write_clips(frames, tmp)
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{name}.old.", dir=out))
            final.rename(old / name)
            tmp.rename(final)
            shutil.rmtree(old)
        else:
            tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return final


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("montages", nargs="+", type=Path, help="DER montage videos (<recording>-<mouse>-der.mp4)")
    ap.add_argument(
        "--out", type=Path, required=True, help="folder that gets one <mouse>/ folder per montage"
    )
    ap.add_argument(
        "--mouse",
        default=None,
        help="the mouse's folder name (one montage only); default: from the file name",
    )
    ap.add_argument("--overwrite", action="store_true", help="replace a mouse folder that already exists")
    args = ap.parse_args(argv)
    if args.mouse is not None and len(args.montages) > 1:
        ap.error("--mouse names one montage's folder; give one montage with it")
    flags = {"`montage`": "MONTAGE", "`mouse`": "--mouse", "`out`": "--out", "`overwrite`": "--overwrite"}
    try:
        names = [args.mouse] if args.mouse is not None else [mouse_name(p) for p in args.montages]
        if len(set(names)) != len(names):
            raise ValueError(f"`montage`: two montages name the same mouse ({', '.join(sorted(names))})")
        for name in names:  # every destination checked before anything is written
            if (args.out / name).exists() and not args.overwrite:
                raise FileExistsError(
                    f"`out` already holds {str(args.out / name)!r}; pass `overwrite` to replace it"
                )
        for montage, name in zip(args.montages, names):
            folder = cut_montage(montage, args.out, name, args.overwrite)
            print(f"{montage} -> {folder} ({len(CURRENTS_UA) * REPEATS} clips)")
    except (OSError, ValueError) as exc:
        message = str(exc)
        for name, flag in flags.items():
            message = message.replace(name, flag)
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
