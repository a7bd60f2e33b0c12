"""Sessions from tail-shock trial clips: one session per mouse, its trials laid end to end.

The source is a folder of mice (or one mouse folder), each holding its trial clips, a
``trials.csv`` (``clip,current_uA[,intensity_level,repeat]``) and an ``events.csv`` whose windows are
on each clip's own clock (e.g. ``2.00,2.0,pain``: the pain window after the shock at 2 s).
:func:`build_tail_shock_sessions` writes, per mouse, ``<out>/<mouse>/tail_shock/``:

* ``face.avi``: the chosen clips decoded with OpenCV, converted to gray (``COLOR_BGR2GRAY``, what
  every mouseemo reader does) and written end to end with the lossless FFV1 codec, so the frames
  mouseemo reads are exactly those of the clips;
* ``events.csv``: each clip's windows moved to the clip's place in the session, for clips with a
  current above zero (``value`` = the current in µA); sham clips (0 µA) get none, so with
  ``data.outside=neutral`` their frames are neutral;
* ``trials.csv``: every clip as a trial (``onset,duration,trigger,clip,current_uA,...``), sham clips
  too, so the trial structure says nothing of the labels (the trial reference of
  :mod:`mouseemo.data.trials` reads it);
* ``session.json``: animal, session, fps, the clip list, ``crop`` when one is given, and the
  ``built_by`` mark that tells a later build this folder is its own.

Safety, as for every mouseemo command:

* **Everything is checked before anything is written**: every mouse folder, table and clip name,
  the currents, the crop and every destination (:func:`plan_tail_shock_sessions`). A mouse name is
  its folder's real name and must be one clean path component; a clip is a path inside its mouse's
  folder, listed once.
* **All or nothing.** Every session is written under a temporary name first; only when all of them
  are complete are they renamed into place, with SIGINT and SIGTERM held back during the renames.
  A clip that turns out corrupt half-way, or an interrupt, leaves the output as it was.
* **Nothing foreign is replaced.** An existing ``<out>/<mouse>/tail_shock/`` is replaced only when
  an earlier build wrote it and it holds nothing else; otherwise only with ``overwrite``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

import cv2
import numpy as np

from mouseemo import __version__
from mouseemo.data.crop import Crop, parse_crop
from mouseemo.data.events import Events, read_events, write_events
from mouseemo.data.trials import Trials, write_trials
from mouseemo.data.video import VideoReader
from mouseemo.errors import ConfigError, DataError
from mouseemo.utils.io import (
    TEMP_TAG,
    current_umask,
    read_user_json,
    read_user_text,
    remove_stale_temps,
    safe_component,
    write_json_atomic,
)

log = logging.getLogger(__name__)

#: Currents (µA) laid into a session by default: the sham trials and the two strongest shocks.
DEFAULT_CURRENTS = (0, 300, 500)
SESSION_NAME = "tail_shock"
DEFAULT_TRIGGER_S = 2.0  # shock trigger on each clip's clock when events.csv gives none
#: ``session.json``'s ``built_by``: marks a session folder this builder wrote.
BUILT_BY = "mouseemo tail-shock build"
#: The files a built session holds; a folder holding anything else is not (only) the builder's.
SESSION_FILES = frozenset({"face.avi", "events.csv", "trials.csv", "session.json"})


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


def plan_mouse_session(
    mouse_dir: str | os.PathLike,
    out: str | os.PathLike,
    currents: Sequence[float] = DEFAULT_CURRENTS,
    crop: str | Sequence[int] | None = None,
    fps: float | None = None,
    overwrite: bool = False,
) -> MousePlan:
    """Check one mouse's folder and its destination; nothing is written.

    Every clip of ``currents`` must exist and decode its first frame, with one frame size and one
    frame rate (or ``fps`` given); the crop must fit.

    Raises:
        DataError: a bad mouse name, table or clip.
        ConfigError: bad currents, crop or fps, or a destination that cannot be (re)written.
    """
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
    return MousePlan(mouse_dir, mouse, rows, windows, float(fps), width, height, crop_t, final)


def _write_session(plan: MousePlan, folder: Path) -> int:
    """Write ``plan``'s session files into ``folder`` (decoding one clip at a time); returns the
    number of frames."""
    writer = cv2.VideoWriter(
        str(folder / "face.avi"), cv2.VideoWriter_fourcc(*"FFV1"), plan.fps, (plan.width, plan.height), False
    )
    if not writer.isOpened():
        raise DataError("this OpenCV cannot write FFV1 video (needs its FFmpeg backend)")
    windows, fps = plan.windows, plan.fps
    trigger_s = float(windows.onset.min()) if len(windows) else DEFAULT_TRIGGER_S
    onset, duration, trigger = [], [], []
    ev_on, ev_dur, ev_lab, ev_val = [], [], [], []
    extra: dict[str, list[str]] = {"clip": [], "current_uA": []}
    for c in (k for k in plan.rows[0] if k not in ("clip", "current_uA")):
        extra[c] = []
    start = 0
    try:
        for r in plan.rows:
            path = plan.clip_path(r)
            with VideoReader(path, timestamps=None) as vr:
                frames = vr.read()
            if frames.shape[1:] != (plan.height, plan.width):
                raise DataError(f"{path}: frames changed size while decoding")
            for frame in frames:
                writer.write(np.ascontiguousarray(frame))
            t0, dur = start / fps, len(frames) / fps
            onset.append(t0)
            duration.append(dur)
            trigger.append(t0 + min(trigger_s, dur - 0.5 / fps))
            for c in extra:
                extra[c].append(r.get(c, ""))
            current = float(r["current_uA"])
            if current > 0:
                for o, d, lab in zip(windows.onset, windows.duration, windows.label):
                    if o < dur:
                        ev_on.append(t0 + o)
                        ev_dur.append(min(d, dur - o))
                        ev_lab.append(lab)
                        ev_val.append(current)
            start += len(frames)
    finally:
        writer.release()
    write_events(
        folder / "events.csv",
        Events(
            onset=np.asarray(ev_on, dtype=np.float64),
            duration=np.asarray(ev_dur, dtype=np.float64),
            label=ev_lab,
            value=np.asarray(ev_val, dtype=np.float64),
            vocabulary=windows.vocabulary,
        ),
    )
    write_trials(
        folder / "trials.csv",
        Trials(np.asarray(onset), np.asarray(duration), np.asarray(trigger), extra=extra),
    )
    meta = {
        "animal": plan.mouse,
        "session": SESSION_NAME,
        "fps": fps,
        "num_frames": int(start),
        "frame_size": [int(plan.width), int(plan.height)],
        "currents_uA": sorted({float(r["current_uA"]) for r in plan.rows}),
        "clips": [r["clip"] for r in plan.rows],
        "source": str(plan.mouse_dir.resolve()),
        "notes": "tail-shock trial clips laid end to end in trials.csv order; events.csv holds the "
        "windows of the clips with current > 0, trials.csv every clip (sham ones too)",
        "built_by": BUILT_BY,
        "mouseemo_version": __version__,
    }
    if plan.crop is not None:
        meta["crop"] = list(plan.crop)
    write_json_atomic(folder / "session.json", meta)
    return int(start)


def _temp_dir(parent: Path, kind: str) -> Path:
    """A fresh hidden folder in ``parent`` named as :func:`remove_stale_temps` recognises."""
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(
        tempfile.mkdtemp(prefix=f".{SESSION_NAME}.{TEMP_TAG}-{os.getpid()}-", suffix=f".{kind}", dir=parent)
    )
    os.chmod(tmp, 0o777 & ~current_umask())
    return tmp


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back (delivered on exit), so a run of renames is not cut in two."""
    held = (signal.SIGINT, signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _commit(written: list[tuple[MousePlan, Path]]) -> None:
    """Rename every written session into place; an old session is moved aside first and removed
    after."""
    olds = []
    with _signals_held():
        for plan, tmp in written:
            if plan.final.exists() or plan.final.is_symlink():
                old = _temp_dir(plan.final.parent, "tmp-old")
                os.replace(plan.final, old / SESSION_NAME)
                olds.append(old)
            os.replace(tmp, plan.final)
    for old in olds:
        shutil.rmtree(old, ignore_errors=True)


def plan_tail_shock_sessions(
    src: str | os.PathLike,
    out: str | os.PathLike,
    currents: Sequence[float] = DEFAULT_CURRENTS,
    crop: str | Sequence[int] | None = None,
    fps: float | None = None,
    overwrite: bool = False,
) -> list[MousePlan]:
    """:func:`plan_mouse_session` for every mouse under ``src``, after checking the arguments."""
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
    return [plan_mouse_session(m, out, currents, crop, fps, overwrite) for m in find_mice(src)]


def write_sessions(plans: Sequence[MousePlan]) -> list[Path]:
    """Write every planned session, then rename them all into place (all or nothing)."""
    written: list[tuple[MousePlan, Path]] = []
    try:
        for plan in plans:
            remove_stale_temps(plan.final.parent)
            tmp = _temp_dir(plan.final.parent, "tmp")
            written.append((plan, tmp))
            n = _write_session(plan, tmp)
            log.info("wrote %s: %d clips, %d frames", plan.final, len(plan.rows), n)
        _commit(written)
    except BaseException:
        for _, tmp in written:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [plan.final for plan in plans]


def build_mouse_session(
    mouse_dir: str | os.PathLike,
    out: str | os.PathLike,
    currents: Sequence[float] = DEFAULT_CURRENTS,
    crop: str | Sequence[int] | None = None,
    fps: float | None = None,
    overwrite: bool = False,
) -> Path:
    """Lay one mouse's clips of ``currents`` end to end into ``<out>/<mouse>/tail_shock/``.

    Clips keep the order of ``trials.csv``. Every clip is checked first, and the session is written
    under a temporary name, so a missing or corrupt clip leaves nothing behind.

    Returns:
        The session folder.

    Raises:
        DataError: a missing or corrupt clip or file, clips of different sizes or frame rates, no
            clip of the chosen currents.
        ConfigError: an existing session folder that this builder did not write (without
            ``overwrite``).
    """
    (final,) = write_sessions([plan_mouse_session(mouse_dir, out, currents, crop, fps, overwrite)])
    return final


def build_tail_shock_sessions(
    src: str | os.PathLike,
    out: str | os.PathLike,
    currents: Sequence[float] = DEFAULT_CURRENTS,
    crop: str | Sequence[int] | None = None,
    fps: float | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Every mouse under ``src`` as a session under ``out``, all or nothing; returns the session
    folders."""
    return write_sessions(plan_tail_shock_sessions(src, out, currents, crop, fps, overwrite))


def describe(sessions: Sequence[Path]) -> str:
    """One line per built session (for the command's output)."""
    lines = []
    for s in sessions:
        meta = json.loads((s / "session.json").read_text())
        lines.append(f"{s}: {len(meta['clips'])} clips, {meta['num_frames']} frames at {meta['fps']:g} fps")
    return "\n".join(lines)
