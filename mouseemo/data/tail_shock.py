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
* ``session.json``: animal, session, fps, the clip list, and ``crop`` when one is given.

The build is rerunnable: an existing session of the same mouse is replaced atomically (written
under a temporary name, then renamed).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from mouseemo.data.events import Events, read_events, write_events
from mouseemo.data.trials import Trials, write_trials
from mouseemo.data.video import VideoReader, parse_crop
from mouseemo.errors import ConfigError, DataError
from mouseemo.utils.io import current_umask, read_user_text, write_json_atomic

log = logging.getLogger(__name__)

#: Currents (µA) laid into a session by default: the sham trials and the two strongest shocks.
DEFAULT_CURRENTS = (0, 300, 500)
SESSION_NAME = "tail_shock"
DEFAULT_TRIGGER_S = 2.0  # shock trigger on each clip's clock when events.csv gives none


def find_mice(src: str | os.PathLike) -> list[Path]:
    """Mouse folders under ``src`` (folders holding a ``trials.csv``), or ``src`` itself."""
    src = Path(src)
    if not src.is_dir():
        raise DataError(f"tail-shock source folder not found: {src}")
    if (src / "trials.csv").is_file():
        return [src]
    mice = sorted(p for p in src.iterdir() if p.is_dir() and (p / "trials.csv").is_file())
    if not mice:
        raise DataError(f"{src}: no mouse folders with a trials.csv (clip,current_uA,...)")
    return mice


def read_clip_table(path: Path) -> list[dict[str, str]]:
    """Rows of a mouse's ``trials.csv``; needs ``clip`` and ``current_uA`` columns."""
    reader = csv.DictReader(io.StringIO(read_user_text(path), newline=""))
    fields = [f.strip() for f in (reader.fieldnames or [])]
    if "clip" not in fields or "current_uA" not in fields:
        raise DataError(f"{path}: needs columns clip,current_uA (got {fields})")
    reader.fieldnames = fields
    rows = []
    try:
        for row_no, row in enumerate(reader, start=2):
            try:
                float(row["current_uA"])
            except (TypeError, ValueError):
                raise DataError(
                    f"{path}, line {row_no}: current_uA must be a number, got {row['current_uA']!r}"
                ) from None
            if not (row.get("clip") or "").strip():
                raise DataError(f"{path}, line {row_no}: no clip name")
            rows.append({k: (v or "").strip() for k, v in row.items() if k is not None})
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV ({exc})") from None
    if not rows:
        raise DataError(f"{path} lists no clips")
    return rows


def _read_clip(path: Path) -> tuple[np.ndarray, float | None]:
    if not path.is_file():
        raise DataError(f"clip listed in trials.csv not found: {path}")
    with VideoReader(path, timestamps=None) as vr:
        frames = vr.read()
        fps = vr.container_fps
    if len(frames) == 0:
        raise DataError(f"video has no decodable frames (corrupt or unsupported): {path}")
    return frames, fps


def build_mouse_session(
    mouse_dir: str | os.PathLike,
    out: str | os.PathLike,
    currents: Sequence[float] = DEFAULT_CURRENTS,
    crop: str | Sequence[int] | None = None,
    fps: float | None = None,
) -> Path:
    """Lay one mouse's clips of ``currents`` end to end into ``<out>/<mouse>/tail_shock/``.

    Clips keep the order of ``trials.csv``. Every clip is decoded first, so a missing or corrupt
    clip raises before anything is written.

    Returns:
        The session folder.

    Raises:
        DataError: a missing or corrupt clip or file, clips of different sizes or frame rates, no
            clip of the chosen currents.
    """
    mouse_dir = Path(mouse_dir)
    mouse = mouse_dir.name
    rows = [
        r
        for r in read_clip_table(mouse_dir / "trials.csv")
        if float(r["current_uA"]) in {float(c) for c in currents}
    ]
    if not rows:
        raise DataError(f"{mouse_dir}/trials.csv has no clip at the currents {list(currents)} µA")
    windows = read_events(mouse_dir / "events.csv")  # on each clip's own clock
    crop_t = parse_crop(crop) if crop is not None else None

    clips, clip_fps = [], set()
    for r in rows:
        frames, f = _read_clip(mouse_dir / r["clip"])
        if clips and frames.shape[1:] != clips[0].shape[1:]:
            raise DataError(
                f"{mouse_dir / r['clip']}: frames are {frames.shape[2]}x{frames.shape[1]}, the first clip's "
                f"{clips[0].shape[2]}x{clips[0].shape[1]}"
            )
        clips.append(frames)
        if f is not None:
            clip_fps.add(round(f, 3))
    if fps is None:
        if len(clip_fps) > 1:
            raise DataError(f"{mouse_dir}: clips have different frame rates {sorted(clip_fps)}; pass fps")
        if not clip_fps:
            raise DataError(f"{mouse_dir}: the clips do not state a frame rate; pass fps")
        fps = float(next(iter(clip_fps)))
    height, width = clips[0].shape[1:]
    if crop_t is not None and (crop_t[0] + crop_t[2] > width or crop_t[1] + crop_t[3] > height):
        raise ConfigError(f"crop {crop_t} reaches outside the {width}x{height} frames")

    trigger_s = float(windows.onset.min()) if len(windows) else DEFAULT_TRIGGER_S
    onset, duration, trigger = [], [], []
    ev_on, ev_dur, ev_lab, ev_val = [], [], [], []
    extra: dict[str, list[str]] = {"clip": [], "current_uA": []}
    for c in (k for k in rows[0] if k not in ("clip", "current_uA")):
        extra[c] = []
    start = 0
    for r, frames in zip(rows, clips):
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

    out = Path(out)
    final = out / mouse / SESSION_NAME
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{SESSION_NAME}.tmp-", dir=final.parent))
    try:
        os.chmod(tmp, 0o777 & ~current_umask())
        writer = cv2.VideoWriter(
            str(tmp / "face.avi"), cv2.VideoWriter_fourcc(*"FFV1"), fps, (width, height), False
        )
        if not writer.isOpened():
            raise DataError("this OpenCV cannot write FFV1 video (needs its FFmpeg backend)")
        try:
            for frames in clips:
                for frame in frames:
                    writer.write(np.ascontiguousarray(frame))
        finally:
            writer.release()
        write_events(
            tmp / "events.csv",
            Events(
                onset=np.asarray(ev_on, dtype=np.float64),
                duration=np.asarray(ev_dur, dtype=np.float64),
                label=ev_lab,
                value=np.asarray(ev_val, dtype=np.float64),
                vocabulary=windows.vocabulary,
            ),
        )
        write_trials(
            tmp / "trials.csv",
            Trials(np.asarray(onset), np.asarray(duration), np.asarray(trigger), extra=extra),
        )
        meta = {
            "animal": mouse,
            "session": SESSION_NAME,
            "fps": fps,
            "num_frames": int(start),
            "frame_size": [int(width), int(height)],
            "currents_uA": sorted({float(r["current_uA"]) for r in rows}),
            "clips": [r["clip"] for r in rows],
            "source": str(mouse_dir),
            "notes": "tail-shock trial clips laid end to end in trials.csv order; events.csv holds the "
            "windows of the clips with current > 0, trials.csv every clip (sham ones too)",
        }
        if crop_t is not None:
            meta["crop"] = list(crop_t)
        write_json_atomic(tmp / "session.json", meta)
        if final.exists():
            old = final.with_name(f".{SESSION_NAME}.old-{os.getpid()}")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote %s: %d clips, %d frames", final, len(rows), start)
    return final


def build_tail_shock_sessions(
    src: str | os.PathLike,
    out: str | os.PathLike,
    currents: Sequence[float] = DEFAULT_CURRENTS,
    crop: str | Sequence[int] | None = None,
    fps: float | None = None,
) -> list[Path]:
    """:func:`build_mouse_session` for every mouse under ``src``; returns the session folders."""
    currents = [float(c) for c in currents]
    if not currents or any(c < 0 for c in currents):
        raise ConfigError(f"currents must be a non-empty list of values >= 0 µA; got {currents}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder")
    if Path(src).resolve() == out.resolve():
        raise ConfigError("the output folder must differ from the source folder")
    return [build_mouse_session(m, out, currents, crop, fps) for m in find_mice(src)]


def describe(sessions: Sequence[Path]) -> str:
    """One line per built session (for the command's output)."""
    lines = []
    for s in sessions:
        meta = json.loads((s / "session.json").read_text())
        lines.append(f"{s}: {len(meta['clips'])} clips, {meta['num_frames']} frames at {meta['fps']:g} fps")
    return "\n".join(lines)
