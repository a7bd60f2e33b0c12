"""Sessions from tail-shock trial clips: one session per mouse, its trials laid end to end.

The source is a folder of mice (or one mouse folder), each holding its trial clips, a
``trials.csv`` (``clip,current_uA[,intensity_level,repeat]``) and an ``events.csv`` whose windows are
on each clip's own clock (e.g. ``2.00,2.0,pain``: the pain window after the shock at 2 s).
:func:`build_tail_shock_sessions` writes, per mouse, ``<out>/<mouse>/tail_shock/``:

* ``face.avi``: the chosen clips, decoded with OpenCV, converted to gray (``COLOR_BGR2GRAY``, what
  every mouseemo reader does) and written end to end with the lossless FFV1 codec, so the frames
  mouseemo reads are exactly those of the clips. They are laid in a seeded random order by default,
  so sham and shock trials interleave (``order="table"``: ``trials.csv`` order, every sham clip
  first; see :mod:`mouseemo.data.tail_shock_plan`);
* ``events.csv``: each clip's windows moved to the clip's place in the session, for clips with a
  current above zero (``value`` = the current in µA); sham clips (0 µA) get none, so with
  ``data.outside=neutral`` their frames are neutral;
* ``trials.csv``: every clip as a trial (``onset,duration,trigger,clip,current_uA,...``), sham clips
  too, so the trial structure says nothing of the labels (the trial reference of
  :mod:`mouseemo.data.trials` reads it);
* ``session.json``: animal, session, fps, the clip list (in the laid order), ``order`` and
  ``seed``, ``crop`` when one is given, and the ``built_by`` mark that tells a later build this
  folder is its own.

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
import json
import logging
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from mouseemo import __version__
from mouseemo.data.events import Events, write_events
from mouseemo.data.tail_shock_plan import (
    BUILT_BY,
    DEFAULT_CURRENTS,
    DEFAULT_TRIGGER_S,
    ORDERS,
    SESSION_FILES,
    SESSION_NAME,
    MousePlan,
    check_order,
    find_mice,
    is_built_session,
    laid_order,
    plan_mouse_session,
    plan_tail_shock_sessions,
    read_clip_table,
)
from mouseemo.data.trials import Trials, write_trials
from mouseemo.data.video import VideoReader
from mouseemo.errors import DataError
from mouseemo.utils.io import TEMP_TAG, current_umask, remove_stale_temps, write_json_atomic

__all__ = [
    "BUILT_BY",
    "DEFAULT_CURRENTS",
    "ORDERS",
    "SESSION_FILES",
    "SESSION_NAME",
    "MousePlan",
    "build_mouse_session",
    "build_tail_shock_sessions",
    "check_order",
    "describe",
    "find_mice",
    "is_built_session",
    "laid_order",
    "plan_mouse_session",
    "plan_tail_shock_sessions",
    "read_clip_table",
    "write_sessions",
]

log = logging.getLogger(__name__)


_ORDER_NOTE = {"random": "a seeded random order (`order`, `seed`)", "table": "trials.csv order"}


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
        "order": plan.order,
        "seed": plan.seed if plan.order == "random" else None,
        "notes": f"tail-shock trial clips laid end to end in {_ORDER_NOTE[plan.order]}; events.csv holds "
        "the windows of the clips with current > 0, trials.csv every clip (sham ones too), both in the "
        "laid order",
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
    *,
    order: str = "random",
    seed: int = 0,
) -> Path:
    """Lay one mouse's clips of ``currents`` end to end into ``<out>/<mouse>/tail_shock/``.

    Clips are laid in a random order drawn from ``seed`` and the mouse's name (``order="random"``,
    the same on every run), or in ``trials.csv`` order (``order="table"``). Every clip is checked
    first, and the session is written under a temporary name, so a missing or corrupt clip leaves
    nothing behind.

    Returns:
        The session folder.

    Raises:
        DataError: a missing or corrupt clip or file, clips of different sizes or frame rates, no
            clip of the chosen currents.
        ConfigError: an existing session folder that this builder did not write (without
            ``overwrite``); a bad ``order`` or ``seed``.
    """
    plan = plan_mouse_session(mouse_dir, out, currents, crop, fps, overwrite, order=order, seed=seed)
    (final,) = write_sessions([plan])
    return final


def build_tail_shock_sessions(
    src: str | os.PathLike,
    out: str | os.PathLike,
    currents: Sequence[float] = DEFAULT_CURRENTS,
    crop: str | Sequence[int] | None = None,
    fps: float | None = None,
    overwrite: bool = False,
    *,
    order: str = "random",
    seed: int = 0,
) -> list[Path]:
    """Every mouse under ``src`` as a session under ``out``, all or nothing (clips ordered as in
    :func:`build_mouse_session`); returns the session folders."""
    plans = plan_tail_shock_sessions(src, out, currents, crop, fps, overwrite, order=order, seed=seed)
    return write_sessions(plans)


def describe(sessions: Sequence[Path]) -> str:
    """One line per built session (for the command's output)."""
    lines = []
    for s in sessions:
        meta = json.loads((s / "session.json").read_text())
        lines.append(f"{s}: {len(meta['clips'])} clips, {meta['num_frames']} frames at {meta['fps']:g} fps")
    return "\n".join(lines)
