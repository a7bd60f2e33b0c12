"""Checking a tail-shock build before anything is written: mouse folders, clip tables, clips,
destinations, and the order the clips are laid in (see :mod:`mouseemo.data.tail_shock`).

A session lays its clips in a seeded random order by default (``order="random"``): in ``trials.csv``
order every sham clip would come first, so a model could learn a frame's place in the session
instead of the face. The order is drawn per mouse from a generator seeded with ``seed`` and a CRC-32
of the mouse's name (stable across runs and machines, unlike Python's salted ``hash``), so the same
build always gives the same sessions. ``order="table"`` keeps ``trials.csv`` order.
"""

from __future__ import annotations

import csv
import io
import math
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

import numpy as np

from mouseemo.data.crop import Crop, parse_crop
from mouseemo.data.events import Events, read_events
from mouseemo.data.video import VideoReader
from mouseemo.errors import ConfigError, DataError
from mouseemo.utils.io import read_user_json, read_user_text, safe_component

#: Currents (µA) laid into a session by default: the sham trials and the two strongest shocks.
DEFAULT_CURRENTS = (0, 300, 500)
SESSION_NAME = "tail_shock"
DEFAULT_TRIGGER_S = 2.0  # shock trigger on each clip's clock when events.csv gives none
#: ``session.json``'s ``built_by``: marks a session folder this builder wrote.
BUILT_BY = "mouseemo tail-shock build"
#: The files a built session holds; a folder holding anything else is not (only) the builder's.
SESSION_FILES = frozenset({"face.avi", "events.csv", "trials.csv", "session.json"})
#: How a session's clips are ordered: shuffled with a seed (``random``) or as ``trials.csv`` lists them.
ORDERS = ("random", "table")


def _mouse_name(folder: Path) -> str:
    """The mouse's name: ``folder``'s real name (``..`` and ``.`` resolved), one clean path component."""
    name = folder.resolve().name
    if not name or safe_component(name) != name:
        raise DataError(
            f"{folder}: the mouse name is taken from the folder's name, and {name!r} is not one plain "
            "path component (no leading dot, no separators or control characters); rename the folder"
        )
    return name


def find_mice(src: str | os.PathLike) -> list[Path]:
    """Mouse folders under ``src`` (folders holding a ``trials.csv``), or ``src`` itself.

    Hidden folders (``.git``, ``.ipynb_checkpoints``) are passed over. Any other folder without a
    ``trials.csv`` is an error naming it: a mouse that is silently left out is a result that quietly
    changes.
    """
    src = Path(src)
    if not src.is_dir():
        raise DataError(f"tail-shock source folder not found: {src}")
    if (src / "trials.csv").is_file():
        return [src]
    folders = sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))
    mice = [p for p in folders if (p / "trials.csv").is_file()]
    if not mice:
        raise DataError(f"{src}: no mouse folders with a trials.csv (clip,current_uA,...)")
    others = [p.name for p in folders if p not in mice]
    if others:
        raise DataError(
            f"{src}: folder(s) {', '.join(others)} hold no trials.csv, so they are no mouse folders; "
            "add their trials.csv or move them out of the source folder"
        )
    return mice


def read_clip_table(path: Path) -> list[dict[str, str]]:
    """Rows of a mouse's ``trials.csv``; needs ``clip`` and ``current_uA`` columns.

    Raises:
        DataError: a missing column, a current that is not a finite number >= 0, an empty clip name,
            a clip path that leaves the mouse's folder (absolute, or through ``..``), or a clip listed
            twice; the message names the file and line.
    """
    reader = csv.DictReader(io.StringIO(read_user_text(path), newline=""))
    fields = [f.strip() for f in (reader.fieldnames or [])]
    if "clip" not in fields or "current_uA" not in fields:
        raise DataError(f"{path}: needs columns clip,current_uA (got {fields})")
    reader.fieldnames = fields
    rows = []
    seen: dict[str, int] = {}
    try:
        for row_no, row in enumerate(reader, start=2):
            row = {k: (v or "").strip() for k, v in row.items() if k is not None}
            try:
                current = float(row["current_uA"])
            except (TypeError, ValueError):
                raise DataError(
                    f"{path}, line {row_no}: current_uA must be a number, got {row['current_uA']!r}"
                ) from None
            if not math.isfinite(current) or current < 0:
                raise DataError(
                    f"{path}, line {row_no}: current_uA must be a finite number >= 0, got {row['current_uA']!r}"
                )
            clip = row.get("clip", "")
            if not clip:
                raise DataError(f"{path}, line {row_no}: no clip name")
            parts = PurePath(clip).parts
            if PurePath(clip).is_absolute() or ".." in parts or "\\" in clip:
                raise DataError(
                    f"{path}, line {row_no}: clip {clip!r} must be a path inside the mouse's folder "
                    "(relative, without '..')"
                )
            key = str(PurePath(*parts))
            if key in seen:
                raise DataError(
                    f"{path}, line {row_no}: clip {clip!r} is listed twice (also line {seen[key]})"
                )
            seen[key] = row_no
            rows.append(row)
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV ({exc})") from None
    if not rows:
        raise DataError(f"{path} lists no clips")
    return rows


@dataclass
class MousePlan:
    """One mouse's session, checked and ready to write (:func:`plan_mouse_session`)."""

    mouse_dir: Path
    mouse: str
    rows: list[dict[str, str]]
    windows: Events
    fps: float
    width: int
    height: int
    crop: Crop | None
    final: Path
    order: str = "random"
    seed: int = 0

    def clip_path(self, row: dict[str, str]) -> Path:
        return self.mouse_dir / row["clip"]


def _probe_clip(path: Path) -> tuple[int, int, float | None]:
    """``(width, height, container fps)`` of a clip, decoding its first frame only."""
    if not path.is_file():
        raise DataError(f"clip listed in trials.csv not found: {path}")
    with VideoReader(path, timestamps=None) as vr:
        return vr.full_width, vr.full_height, vr.container_fps


def is_built_session(folder: Path) -> bool:
    """Whether ``folder`` is a session this builder wrote and holds nothing else."""
    if not folder.is_dir() or folder.is_symlink():
        return False
    names = {p.name for p in folder.iterdir()}
    if not names <= SESSION_FILES or "session.json" not in names:
        return False
    try:
        meta = read_user_json(folder / "session.json")
    except DataError:
        return False
    return isinstance(meta, dict) and meta.get("built_by") == BUILT_BY


def _check_destination(final: Path, overwrite: bool) -> None:
    parent = final.parent
    if parent.exists() and not parent.is_dir():
        raise ConfigError(f"{parent} is a file, so the session folder {final} cannot be created")
    if not (final.exists() or final.is_symlink()):
        return
    if overwrite:
        if final.is_symlink() or not final.is_dir():
            raise ConfigError(f"refusing to replace {final}: it is not a folder (remove it yourself)")
        return
    if not is_built_session(final):
        raise ConfigError(
            f"refusing to replace {final}: mouseemo tail-shock build did not write it, or it holds other "
            "files (set `overwrite` to replace it)"
        )


def check_order(order: str, seed: int) -> None:
    """ConfigError naming `order` or `seed` when they are not an order of :data:`ORDERS` and an
    integer >= 0."""
    if order not in ORDERS:
        raise ConfigError(f"`order` must be one of {list(ORDERS)}; got {order!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"`seed` must be an integer >= 0; got {seed!r}")


def laid_order(rows: list[dict[str, str]], mouse: str, order: str = "random", seed: int = 0) -> list:
    """``rows`` in the order they are laid into ``mouse``'s session: ``trials.csv`` order
    (``table``), or shuffled by a generator seeded with ``seed`` and the CRC-32 of ``mouse``
    (``random``), the same on every run and machine."""
    check_order(order, seed)
    if order == "table":
        return list(rows)
    rng = np.random.default_rng([int(seed), zlib.crc32(mouse.encode("utf-8"))])
    return [rows[i] for i in rng.permutation(len(rows))]


def plan_mouse_session(
    mouse_dir: str | os.PathLike,
    out: str | os.PathLike,
    currents: Sequence[float] = DEFAULT_CURRENTS,
    crop: str | Sequence[int] | None = None,
    fps: float | None = None,
    overwrite: bool = False,
    *,
    order: str = "random",
    seed: int = 0,
) -> MousePlan:
    """Check one mouse's folder and its destination; nothing is written.

    Every clip of ``currents`` must exist and decode its first frame, with one frame size and one
    frame rate (or ``fps`` given); the crop must fit. The plan's rows are in the order they will be
    laid (:func:`laid_order`).

    Raises:
        DataError: a bad mouse name, table or clip.
        ConfigError: bad currents, crop, fps, order or seed, or a destination that cannot be
            (re)written.
    """
    check_order(order, seed)
    mouse_dir = Path(mouse_dir)
    mouse = _mouse_name(mouse_dir)
    chosen = {float(c) for c in currents}
    rows = [r for r in read_clip_table(mouse_dir / "trials.csv") if float(r["current_uA"]) in chosen]
    if not rows:
        raise DataError(f"{mouse_dir}/trials.csv has no clip at the currents {sorted(chosen)} µA")
    windows = read_events(mouse_dir / "events.csv")  # on each clip's own clock
    crop_t = parse_crop(crop) if crop is not None else None
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise ConfigError(f"fps must be a finite number > 0; got {fps}")

    size, clip_fps = None, set()
    for r in rows:
        w, h, f = _probe_clip(mouse_dir / r["clip"])
        if size is not None and (w, h) != size:
            raise DataError(
                f"{mouse_dir / r['clip']}: frames are {w}x{h}, the first clip's {size[0]}x{size[1]}"
            )
        size = (w, h)
        if f is not None:
            clip_fps.add(round(f, 3))
    if fps is None:
        if len(clip_fps) > 1:
            raise DataError(f"{mouse_dir}: clips have different frame rates {sorted(clip_fps)}; pass fps")
        if not clip_fps:
            raise DataError(f"{mouse_dir}: the clips do not state a frame rate; pass fps")
        fps = float(next(iter(clip_fps)))
    width, height = size
    if crop_t is not None and (crop_t[0] + crop_t[2] > width or crop_t[1] + crop_t[3] > height):
        raise ConfigError(f"crop {crop_t} reaches outside the {width}x{height} frames")
    final = Path(out) / mouse / SESSION_NAME
    _check_destination(final, overwrite)
    rows = laid_order(rows, mouse, order, seed)
    return MousePlan(
        mouse_dir, mouse, rows, windows, float(fps), width, height, crop_t, final, order, int(seed)
    )


def plan_tail_shock_sessions(
    src: str | os.PathLike,
    out: str | os.PathLike,
    currents: Sequence[float] = DEFAULT_CURRENTS,
    crop: str | Sequence[int] | None = None,
    fps: float | None = None,
    overwrite: bool = False,
    *,
    order: str = "random",
    seed: int = 0,
) -> list[MousePlan]:
    """:func:`plan_mouse_session` for every mouse under ``src``, after checking the arguments."""
    check_order(order, seed)
    try:
        currents = [float(c) for c in currents]
    except (TypeError, ValueError):
        raise ConfigError(f"currents must be numbers in µA; got {currents}") from None
    if not currents or any(not math.isfinite(c) or c < 0 for c in currents):
        raise ConfigError(f"currents must be a non-empty list of finite values >= 0 µA; got {currents}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output folder {out} is a file, not a folder")
    src_r, out_r = Path(src).resolve(), out.resolve()
    if src_r == out_r or src_r in out_r.parents or out_r in src_r.parents:
        raise ConfigError("the output folder and the source folder must not lie inside one another")
    return [
        plan_mouse_session(m, out, currents, crop, fps, overwrite, order=order, seed=seed)
        for m in find_mice(src)
    ]
