"""What a command's VIDEO / INPUT arguments stand for: one :class:`VideoInput` per video.

* :func:`resolve_inputs`: video files and session folders, each with its events file (``mouseemo
  prototypes``); every problem is an error before any work starts.
* :func:`expand_inputs`: files, session folders, dataset folders with a ``manifest.csv``, the
  manifest itself, other folders (searched recursively) and glob patterns (``mouseemo predict``);
  an input that yields no video becomes an :class:`InputFailure`, and the others go on.

Stems often come from files someone else wrote (``session.json``, ``manifest.csv``, folder names):
:class:`VideoInput` cleans every stem to one path component
(:func:`~mouseemo.utils.io.safe_component`), so outputs named after it stay inside the output folder.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mouseemo.constants import VIDEO_EXTENSIONS
from mouseemo.data.session import Session, looks_like_session, read_manifest
from mouseemo.data.trials import REQUIRED, TRIALS_FILE
from mouseemo.errors import ConfigError, DataError, MouseemoError
from mouseemo.utils.io import safe_component

_GLOB_CHARS = "*?["


@dataclass
class VideoInput:
    """One video: the file, its events file (if any), the output stem, session metadata, and its
    ``trials.csv`` (the session's, or one beside the video; ``None`` when ``--events`` was given,
    which then sets the stimulus onsets of trial-locked models).

    The stem is cleaned to one path component (:func:`~mouseemo.utils.io.safe_component`).
    """

    video: Path
    events: Path | None
    stem: str
    meta: dict = field(default_factory=dict)
    trials: Path | None = None

    def __post_init__(self) -> None:
        self.stem = safe_component(self.stem)


@dataclass
class InputFailure:
    """An INPUT that yields no video to predict (missing file, empty folder, bad manifest row)."""

    name: str
    message: str


def resolve_inputs(paths: Sequence[str], events: Sequence[str] | None, need_events: bool) -> list[VideoInput]:
    """Turn command-line VIDEO arguments (files or session folders) and ``--events`` into inputs.

    A session folder contributes its face video and ``events.csv``; a video file uses the
    ``events.csv`` beside it unless ``--events`` is given. ``--events`` must be given once per VIDEO.

    Raises:
        DataError: a missing video, folder or events file (checked for every input before any work).
        ConfigError: ``--events`` count does not match, or events are needed and absent.
    """
    events = list(events or [])
    if events and len(events) != len(paths):
        raise ConfigError(f"give `events` once per video: {len(paths)} video(s), {len(events)} events files")
    out: list[VideoInput] = []
    for i, raw in enumerate(paths):
        p = Path(raw)
        if p.is_dir():
            s = Session.open(p)
            video, ev, stem, meta = s.video, s.events_path, f"{s.animal}_{s.session}", s.meta
        elif p.is_file():
            video, stem, meta = p, p.stem, {}
            beside = p.with_name("events.csv")
            ev = beside if beside.is_file() else None
        else:
            raise DataError(f"video not found: {p}")
        if events:
            ev = Path(events[i])
            if not ev.is_file():
                raise DataError(f"events file not found: {ev}")
        if need_events and ev is None:
            raise ConfigError(f"{p}: no events file; give `events` (one events.csv per video)")
        out.append(VideoInput(video=video, events=ev, stem=stem, meta=meta))
    return out


def session_input(
    path: Path, animal: str | None = None, session: str | None = None, events: str | None = None
) -> VideoInput:
    """The input of one session folder (``animal`` / ``session`` as a manifest names them)."""
    s = Session.open(path, animal=animal, session=session)
    if events is not None and not Path(events).is_file():
        raise DataError(f"events file not found: {events}")
    ev = Path(events) if events is not None else s.events_path
    trials = _trials_beside(s.video) if events is None else None
    return VideoInput(video=s.video, events=ev, stem=f"{s.animal}_{s.session}", meta=s.meta, trials=trials)


def _trials_beside(video: Path, only_trial_tables: bool = False) -> Path | None:
    """The ``trials.csv`` beside ``video``; with ``only_trial_tables`` (a plain video file, not a
    session) only when it is a table of trials (``onset,duration,trigger``): a folder of clips may hold
    a ``trials.csv`` of another kind (a clip table), which says nothing about this video's onsets."""
    path = video.with_name(TRIALS_FILE)
    if not path.is_file():
        return None
    if only_trial_tables:
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                header = {c.strip() for c in fh.readline().split(",")}
        except OSError:
            return None
        if not set(REQUIRED) <= header:
            return None
    return path


def _file_input(path: Path, events: str | None, stem: str | None = None) -> VideoInput:
    vi = resolve_inputs([str(path)], [events] if events else None, need_events=False)[0]
    trials = _trials_beside(vi.video, only_trial_tables=True) if events is None else None
    return VideoInput(video=vi.video, events=vi.events, stem=stem or vi.stem, trials=trials)


def _guarded(name: str, make, *args) -> list:
    """``[make(*args)]``, or ``[InputFailure]`` when it raises a user error."""
    try:
        return [make(*args)]
    except MouseemoError as err:
        return [InputFailure(name, str(err))]


def _manifest_inputs(manifest: Path) -> list:
    try:
        rows = read_manifest(manifest)
    except MouseemoError as err:
        return [InputFailure(str(manifest), str(err))]
    return [
        item for animal, session, p in rows for item in _guarded(str(p), session_input, p, animal, session)
    ]


def _folder_inputs(root: Path, exclude: Path | None) -> list:
    """Session folders and video files below ``root`` (hidden folders and ``exclude`` left out)."""
    found: list = []
    seen: set[Path] = set()

    def visit(d: Path) -> None:
        real = d.resolve()
        if real == exclude or real in seen:  # the output folder; a symlink loop
            return
        seen.add(real)
        if d != root and looks_like_session(d):
            found.extend(_guarded(str(d), session_input, d))
            return
        try:
            children = sorted(d.iterdir())
        except OSError as err:
            found.append(InputFailure(str(d), f"cannot list folder {d}: {err.strerror}"))
            return
        for child in children:
            if child.name.startswith("."):
                continue
            if child.is_dir():
                visit(child)
            elif child.suffix.lower() in VIDEO_EXTENSIONS:
                stem = "_".join(child.relative_to(root).with_suffix("").parts)
                found.extend(_guarded(str(child), _file_input, child, None, stem))

    visit(root)
    if not found:
        return [
            InputFailure(
                str(root), f"no session folders or videos ({', '.join(VIDEO_EXTENSIONS)}) under {root}"
            )
        ]
    return found


def _path_inputs(p: Path, events: str | None, exclude: Path | None) -> list:
    if p.is_file():
        if p.suffix.lower() == ".csv" and events is None:
            return _manifest_inputs(p)
        return _guarded(str(p), _file_input, p, events)
    if p.is_dir():
        if (p / "manifest.csv").is_file():
            return _manifest_inputs(p / "manifest.csv")
        if looks_like_session(p):
            return _guarded(str(p), session_input, p, None, None, events)
        return _folder_inputs(p, exclude)
    return [InputFailure(str(p), f"video not found: {p}")]


def expand_inputs(
    raw: Sequence[str], events: Sequence[str] | None = None, exclude: str | Path | None = None
) -> list[VideoInput | InputFailure]:
    """Turn INPUT arguments into :class:`VideoInput` items and :class:`InputFailure` entries (one
    per input that yields nothing), in order, without duplicates.

    Args:
        raw: files, folders, manifests or glob patterns.
        events: one events file per INPUT (each INPUT must then be a single video), or ``None``.
        exclude: a folder never searched (the output folder, which may hold overlay videos).

    Raises:
        ConfigError: ``--events`` given a number of times other than once per INPUT, or for an
            INPUT that is not a single video.
    """
    if events and len(events) != len(raw):
        raise ConfigError(f"give `events` once per input: {len(raw)} input(s), {len(events)} events files")
    exclude = Path(exclude).resolve() if exclude is not None else None
    items: list = []
    for i, arg in enumerate(raw):
        ev = events[i] if events else None
        p = Path(arg)
        if not p.exists() and any(c in arg for c in _GLOB_CHARS):
            matches = sorted(glob.glob(arg, recursive=True))
            if not matches:
                items.append(InputFailure(arg, f"no file matches {arg!r}"))
                continue
            got = [x for m in matches for x in _path_inputs(Path(m), ev, exclude)]
        else:
            got = _path_inputs(p, ev, exclude)
        if ev is not None and len(got) != 1:
            raise ConfigError(f"`events` is given per video, but {arg} stands for {len(got)} videos")
        items.extend(got)
    seen: set[Path] = set()
    unique = []
    for item in items:
        if isinstance(item, InputFailure):
            unique.append(item)
            continue
        key = item.video.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return unique


__all__ = ["InputFailure", "VideoInput", "expand_inputs", "resolve_inputs", "session_input"]
