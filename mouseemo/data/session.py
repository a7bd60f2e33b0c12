"""One session folder (the contract in the architecture docs) and discovery of a dataset root.

A dataset root holds ``<animal>/<session>/`` folders, or a ``manifest.csv`` with columns
``animal,session,path`` (``path`` relative to the root or absolute).
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mouseemo.constants import EMOTION_INDEX, VIDEO_EXTENSIONS
from mouseemo.data.crop import Crop, parse_crop
from mouseemo.data.video import VideoReader
from mouseemo.errors import ConfigError, DataError
from mouseemo.utils.io import read_user_json, read_user_text


@dataclass
class Session:
    """Paths and metadata of one recorded (or synthetic) session."""

    path: Path
    animal: str
    session: str
    video: Path
    meta: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.animal}/{self.session}"

    def _optional(self, rel: str) -> Path | None:
        p = self.path / rel
        return p if p.exists() else None

    @property
    def face_timestamps(self) -> Path | None:
        return self._optional("face_timestamps.csv")

    @property
    def events_path(self) -> Path | None:
        return self._optional("events.csv")

    @property
    def suite2p(self) -> Path | None:
        return self._optional("suite2p/plane0")

    @property
    def imaging_timestamps(self) -> Path | None:
        return self._optional("imaging_timestamps.csv")

    @property
    def truth_frames(self) -> Path | None:
        return self._optional("truth/frames.csv")

    @property
    def fps(self) -> float | None:
        v = self.meta.get("fps")
        return float(v) if v else None

    @classmethod
    def open(cls, path: str | os.PathLike, animal: str | None = None, session: str | None = None) -> Session:
        """Open a session folder; it needs one face video (``face.mp4``/``face.avi`` or any video)."""
        path = Path(path)
        if not path.is_dir():
            raise DataError(f"session folder not found: {path}")
        meta: dict = {}
        meta_path = path / "session.json"
        if meta_path.exists():
            meta = read_user_json(meta_path)
            if not isinstance(meta, dict):
                raise DataError(f"{meta_path}: expected a JSON object {{...}}, got {type(meta).__name__}")
        video = None
        for name in ("face.mp4", "face.avi"):
            if (path / name).is_file():
                video = path / name
                break
        if video is None:
            candidates = sorted(
                p for p in path.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file()
            )
            if len(candidates) == 1:
                video = candidates[0]
            elif len(candidates) > 1:
                raise DataError(
                    f"{path}: several videos {[c.name for c in candidates]}; name the face video face.mp4"
                )
            else:
                raise DataError(f"{path}: no face video (face.mp4 or face.avi) in the session folder")
        return cls(
            path=path,
            animal=str(animal or meta.get("animal") or path.parent.name),
            session=str(session or meta.get("session") or path.name),
            video=video,
            meta=meta,
        )


def discover_sessions(root: str | os.PathLike) -> list[Session]:
    """All sessions under ``root`` (a manifest, ``<animal>/<session>/`` folders, or one session folder).

    Raises:
        DataError: ``root`` does not exist or holds no session.
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"dataset root not found: {root}")
    manifest = root / "manifest.csv"
    if manifest.is_file():
        return [Session.open(p, animal=a, session=s) for a, s, p in read_manifest(manifest)]
    if looks_like_session(root):
        return [Session.open(root)]
    sessions = [
        Session.open(s)
        for a in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        for s in sorted(p for p in a.iterdir() if p.is_dir() and looks_like_session(p))
    ]
    if not sessions:
        raise DataError(f"no sessions under {root} (expected <animal>/<session>/ folders with a face video)")
    return sessions


def read_manifest(manifest: str | os.PathLike) -> list[tuple[str | None, str | None, Path]]:
    """Rows ``(animal, session, folder)`` of a ``manifest.csv`` (``path`` relative to its folder).

    Raises:
        DataError: no ``path`` column, or no rows.
    """
    manifest = Path(manifest)
    rows = []
    reader = csv.DictReader(io.StringIO(read_user_text(manifest), newline=""))
    try:
        if not reader.fieldnames or "path" not in reader.fieldnames:
            raise DataError(f"{manifest}: needs a 'path' column (animal,session,path)")
        for row in reader:
            if not row.get("path"):
                raise DataError(f"{manifest}, line {reader.line_num}: no path")
            p = Path(row["path"])
            rows.append(
                (
                    row.get("animal") or None,
                    row.get("session") or None,
                    p if p.is_absolute() else manifest.parent / p,
                )
            )
    except csv.Error as exc:
        raise DataError(f"{manifest}: malformed CSV ({exc})") from None
    if not rows:
        raise DataError(f"{manifest} lists no sessions")
    return rows


def looks_like_session(path: Path) -> bool:
    """Whether ``path`` is a session folder (a ``face.mp4``/``face.avi`` or a ``session.json``)."""
    return (path / "face.mp4").is_file() or (path / "face.avi").is_file() or (path / "session.json").is_file()


def read_truth_frames(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read ``truth/frames.csv`` (synthetic sessions) into columns.

    ``label`` comes back as class indices (int64); every other column as float64.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"truth file not found: {path}")
    reader = csv.reader(io.StringIO(read_user_text(path), newline=""))
    try:
        header = next(reader)
        rows = list(reader)
    except StopIteration:
        raise DataError(f"{path} is empty") from None
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV ({exc})") from None
    if "label" not in header or "frame" not in header:
        raise DataError(f"{path}: needs columns frame,label,...")
    cols: dict[str, np.ndarray] = {}
    li = header.index("label")
    try:
        cols["label"] = np.array([EMOTION_INDEX[r[li]] for r in rows], dtype=np.int64)
    except KeyError as err:
        raise DataError(f"{path}: unknown label {err.args[0]!r}") from None
    for j, name in enumerate(header):
        if j == li:
            continue
        try:
            cols[name] = np.array([float(r[j]) for r in rows], dtype=np.float64)
        except ValueError:
            continue  # non-numeric extra columns are kept out rather than guessed at
    return cols


def resolve_crop(
    crop=None, model_crop=None, meta: dict | None = None, *, model: str = "the model", source: str = ""
) -> Crop | None:
    """The crop a session's frames are read with, by one rule for every command: ``crop`` (the
    user's; ``"none"``: the whole frame), else the ``crop`` of the session's ``session.json``
    (``meta``), else the model's (``model_crop``: a checkpoint's or a prototypes file's), else
    ``None`` (the whole frame).

    Each may be ``"x,y,w,h"``, a preset name (:data:`~mouseemo.data.crop.CROP_PRESETS`), a
    4-sequence or ``None``; the result is a crop tuple or ``None``. A plain video file has no
    ``meta``: its crop is the user's, else the model's.

    Raises:
        ConfigError: no ``crop`` is given and the session's crop and the model's differ (named
            ``model``, in ``source``): the frames would not be those the model was built on, so
            the user chooses.
    """
    if crop is not None and len(crop):
        return parse_crop(crop)
    session_crop = (meta or {}).get("crop")
    session_crop = parse_crop(session_crop) if session_crop is not None and len(session_crop) else None
    model_crop = parse_crop(model_crop) if model_crop is not None and len(model_crop) else None
    if session_crop is not None and model_crop is not None and session_crop != model_crop:
        where = f"{source}: " if source else ""
        raise ConfigError(
            f"{where}the session's crop {list(session_crop)} (session.json) differs from the crop "
            f"{list(model_crop)} of {model}: give `crop` to choose one (`crop` none: the whole frame)"
        )
    return session_crop if session_crop is not None else model_crop


def session_times(session: Session, num_frames: int) -> np.ndarray:
    """Camera-clock times of the ``num_frames`` frames of the session's video (counted elsewhere,
    e.g. when a frame cache was built): ``face_timestamps.csv`` (one row per frame), else
    ``index / fps`` with ``session.json``'s fps (else the container's, else 30); see
    :meth:`mouseemo.data.video.VideoReader.clock`.
    """

    with VideoReader(session.video, timestamps=session.face_timestamps) as vr:
        return vr.clock(fps=session.fps, strict=True).all(num_frames)
