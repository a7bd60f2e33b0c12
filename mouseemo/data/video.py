"""Face video reading: stream frames in chunks with OpenCV, crop, gray, exact frame counts, seeking,
timestamps, and a decode-once uint8 frame cache for fast random access in training.

Containers often store a wrong frame count, so :attr:`VideoReader.num_frames` counts by decoding
(``grab`` without colour conversion, once, then cached). Frames are never all held in memory: use
:meth:`VideoReader.iter_chunks`, or build a :class:`FrameCache` (a memory-mapped ``.npy``).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

# FFmpeg's own messages about a broken file ("moov atom not found") would print beside mouseemo's
# one-line error; keep FFmpeg quiet unless the user asked otherwise.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
_QUIET_OPENCV = "OPENCV_LOG_LEVEL" not in os.environ

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from mouseemo.data.crop import Crop, check_crop, parse_crop, to_gray  # noqa: E402
from mouseemo.data.sync import read_timestamps  # noqa: E402
from mouseemo.data.video_clock import Clock  # noqa: E402
from mouseemo.errors import ConfigError, DataError  # noqa: E402
from mouseemo.utils.io import atomic_path, write_json_atomic  # noqa: E402

if _QUIET_OPENCV:  # OpenCV's own "could not find decoder" lines, likewise (cv2 may be imported already)
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

#: Bumped when the cache layout changes, so stale caches are rebuilt instead of misread.
CACHE_VERSION = 1


def describe_unreadable(path: str | os.PathLike) -> str:
    """Why OpenCV may fail to open ``path``, from its first bytes (for error messages)."""
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        i = head.find(b"vids")
        codec = head[i + 4 : i + 8].decode("latin1", "replace").strip("\x00 ") if i >= 0 else ""
        return f"AVI container; codec {codec!r} unsupported by this OpenCV/FFmpeg, or the file is corrupt"
    if head[4:8] == b"ftyp":
        return "MP4/MOV container without a readable index: corrupt, or truncated while recording"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "Matroska container; unsupported codec or corrupt file"
    return "not a video container OpenCV recognises, or corrupt"


class VideoReader:
    """Stream gray uint8 frames from a video file.

    Args:
        path: any OpenCV-readable video.
        crop: ``(x, y, w, h)`` applied to every frame, or ``None``.
        timestamps: ``frame,time_s`` CSV on the camera clock. ``"auto"`` uses ``face_timestamps.csv``
            beside the video when present; ``None`` means ``index / fps``.

    Example:
        >>> with VideoReader("face.mp4", crop=(0, 0, 256, 192)) as vr:  # doctest: +SKIP
        ...     for start, frames in vr.iter_chunks(256):
        ...         print(start, frames.shape)  # (b, 192, 256) uint8
    """

    def __init__(
        self,
        path: str | os.PathLike,
        crop: Crop | str | None = None,
        timestamps: str | os.PathLike | None = "auto",
    ) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise DataError(f"video not found: {self.path}")
        if not self.path.is_file():
            raise DataError(f"video path is not a file: {self.path}")
        if self.path.stat().st_size == 0:
            raise DataError(f"video file is empty (0 bytes): {self.path}")
        self._cap = self._open()
        ok, first = self._cap.read()
        if not ok or first is None:
            self._cap.release()
            raise DataError(f"video has no decodable frames (corrupt or unsupported): {self.path}")
        self.full_height, self.full_width = first.shape[:2]
        self._pos = 1
        self._seeked = False
        self.crop = parse_crop(crop)
        check_crop(self.crop, self.full_height, self.full_width, self.path)
        self._num_frames: int | None = None
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self._container_fps = fps if np.isfinite(fps) and fps > 0 else None
        if timestamps == "auto":
            cand = self.path.with_name("face_timestamps.csv")
            timestamps = cand if cand.exists() else None
        self.timestamps_path = Path(timestamps) if timestamps is not None else None
        self._clocks: dict[tuple, Clock] = {}

    # -- opening and basic properties -------------------------------------------------------------
    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise DataError(f"cannot open video ({describe_unreadable(self.path)}): {self.path}")
        return cap

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

    @property
    def height(self) -> int:
        """Frame height after cropping."""
        return self.crop[3] if self.crop else self.full_height

    @property
    def width(self) -> int:
        """Frame width after cropping."""
        return self.crop[2] if self.crop else self.full_width

    @property
    def fps(self) -> float:
        """Nominal frame rate: from the timestamps when present, else the container's (see :meth:`clock`)."""
        clock = self.clock()
        for note in clock.notes:
            warnings.warn(f"{self.path}: {note}", stacklevel=2)
        return clock.fps

    def clock(self, fps: float | None = None, strict: bool = False) -> Clock:
        """The camera clock: per-frame times from the timestamps file (or none), the frame rate and
        notes (:class:`Clock`).

        Args:
            fps: the frame rate when there is no timestamps file (e.g. ``session.json``'s), before
                the container's.
            strict: timestamps must increase strictly (else duplicated frames, equal times, pass;
                QC reports them).
        """
        key = (fps, strict)
        if key not in self._clocks:
            notes: list[str] = []
            times = None
            rate = None
            if self.timestamps_path is not None:
                times = read_timestamps(self.timestamps_path, strict=strict)
                steps = np.diff(times)
                steps = steps[steps > 0]
                rate = float(1.0 / np.median(steps)) if len(steps) else None
            else:
                rate = fps
            if rate is None:
                rate = self._container_fps
            if rate is None:
                rate = 30.0
                if times is None:
                    notes.append(
                        "the container states no frame rate and there is no face_timestamps.csv: "
                        "assuming 30 fps"
                    )
            self._clocks[key] = Clock(times, rate, notes, self.timestamps_path, self.path)
        return self._clocks[key]

    @property
    def container_fps(self) -> float | None:
        """The frame rate the container states, or ``None``."""
        return self._container_fps

    @property
    def frame_count_hint(self) -> int | None:
        """The frame count the container states (no decoding; may be wrong), or ``None``."""
        n = self._cap.get(cv2.CAP_PROP_FRAME_COUNT) if self._cap is not None else 0
        return int(n) if np.isfinite(n) and n > 0 else None

    @property
    def num_frames(self) -> int:
        """Exact frame count, found by decoding the whole file once (container counts lie)."""
        if self._num_frames is None:
            cap = self._open()
            n = 0
            try:
                while cap.grab():
                    n += 1
            finally:
                cap.release()
            self._num_frames = n
        return self._num_frames

    @property
    def timestamps(self) -> np.ndarray:
        """Camera-clock time of each frame in seconds, ``(num_frames,)`` float64 (strictly increasing
        when read from a file)."""
        return self.clock(strict=True).all(self.num_frames)

    # -- decoding ----------------------------------------------------------------------------------
    def _prepare(self, frame: np.ndarray) -> np.ndarray:
        if self.crop is not None:
            x, y, w, h = self.crop
            frame = frame[y : y + h, x : x + w]
        return to_gray(frame)

    def _seek(self, index: int) -> None:
        """Position the decoder so that the next read returns frame ``index``."""
        self._seeked = False
        if self._cap is None:
            self._cap = self._open()
            self._pos = 0
        if index == self._pos:
            return
        if index == 0:
            # Back to the start: reopening is exact. A container seek to frame 0 of a one-frame video
            # reports success and then reads nothing.
            self._reopen()
            return
        if index < self._pos or index - self._pos > 64:
            # Container seeks can land on a keyframe; verify, and fall back to decoding forward.
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, index)
            if int(self._cap.get(cv2.CAP_PROP_POS_FRAMES)) == index:
                self._pos = index
                self._seeked = True  # the position is the container's word; iter_chunks checks it
                return
            self._reopen()
        self._grab_to(index)

    def _reopen(self) -> None:
        if self._cap is not None:
            self._cap.release()
        self._cap = self._open()
        self._pos = 0

    def _seek_exact(self, index: int) -> None:
        """Decode forward from the start to frame ``index`` (no container seek)."""
        self._reopen()
        self._seeked = False
        self._grab_to(index)

    def _grab_to(self, index: int) -> None:
        while self._pos < index:
            if not self._cap.grab():
                raise DataError(f"cannot seek to frame {index}: {self.path} ends at frame {self._pos}")
            self._pos += 1

    def iter_chunks(
        self, chunk_size: int = 256, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first_index, frames)`` with ``frames`` uint8 ``(b, H, W)``, ``b <= chunk_size``.

        Decoding stops at ``stop`` (exclusive) or at the end of the video; memory stays constant in
        the video's length.
        """
        if chunk_size <= 0:
            raise ConfigError(f"chunk_size must be positive, got {chunk_size}")
        if start < 0:
            raise ConfigError(f"start must be >= 0, got {start}")
        self._seek(start)
        index = start
        buf = np.empty((chunk_size, self.height, self.width), dtype=np.uint8)
        while stop is None or index < stop:
            n = 0
            limit = chunk_size if stop is None else min(chunk_size, stop - index)
            while n < limit:
                ok, frame = self._cap.read()
                if not ok and self._seeked and index + n == start:
                    # the container said it reached ``start`` but gives no frame there: decode forward
                    self._seek_exact(start)
                    ok, frame = self._cap.read()
                self._seeked = False
                if not ok:
                    break
                self._pos += 1
                if frame.shape[0] != self.full_height or frame.shape[1] != self.full_width:
                    raise DataError(
                        f"{self.path}: frame {index + n} is {frame.shape[1]}x{frame.shape[0]}, "
                        f"expected {self.full_width}x{self.full_height}"
                    )
                buf[n] = self._prepare(frame)
                n += 1
            if n == 0:
                break
            yield index, buf[:n].copy()
            index += n
            if n < limit:
                break
        if self._num_frames is None and stop is None:
            self._num_frames = index

    def read_frames(self, indices) -> np.ndarray:
        """The frames at ``indices`` (any order, repeats allowed) as uint8 ``(n, H, W)``, in sorted
        order of the unique indices, from one forward pass that decodes up to the last of them
        (``grab`` skips the colour conversion of the frames in between). Indices past the end of the
        video are dropped, so fewer frames can come back.
        """
        want = np.unique(np.asarray(indices, dtype=np.int64))
        if len(want) and want[0] < 0:
            raise ConfigError(f"frame indices must be >= 0; got {int(want[0])}")
        out = np.empty((len(want), self.height, self.width), dtype=np.uint8)
        cap, n, k = self._open(), 0, 0
        try:
            while k < len(want):
                if not cap.grab():
                    break
                if n == want[k]:
                    ok, frame = cap.retrieve()
                    if not ok:
                        break
                    out[k] = self._prepare(frame)
                    k += 1
                n += 1
        finally:
            cap.release()
        return out[:k]

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Frames ``[start, stop)`` as one uint8 array ``(T, H, W)`` (use for short ranges)."""
        chunks = [frames for _, frames in self.iter_chunks(512, start, stop)]
        if not chunks:
            return np.empty((0, self.height, self.width), dtype=np.uint8)
        return np.concatenate(chunks)

    def __iter__(self) -> Iterator[np.ndarray]:
        for _, frames in self.iter_chunks(64):
            yield from frames

    def __len__(self) -> int:
        return self.num_frames


def session_reference(frames: np.ndarray, max_frames: int = 300) -> np.ndarray:
    """The pixel-wise median of up to ``max_frames`` frames spread evenly over a session.

    A head-fixed session is seen by one camera placement, so this is the animal's typical face
    (mostly neutral: expressions are brief, and the median ignores them) under that session's camera
    and lighting. Models given it can read expressions as changes from it, which removes most
    between-animal and between-setup differences. Labels play no part.

    Shape:
        ``(T, H, W)`` uint8 -> ``(H, W)`` uint8.
    """
    if frames.ndim != 3 or len(frames) == 0:
        raise DataError(f"a session reference needs (T, H, W) frames; got shape {tuple(frames.shape)}")
    pick = reference_indices(len(frames), max_frames)
    return np.median(np.asarray(frames[pick]), axis=0).round().astype(np.uint8)


def reference_indices(num_frames: int, max_frames: int = 300) -> np.ndarray:
    """Frames a session reference is the median of: up to ``max_frames`` spread evenly."""
    if num_frames <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.unique(
        np.linspace(0, num_frames - 1, min(int(max_frames), num_frames)).round().astype(np.int64)
    )


def video_reference(
    vr: VideoReader, size: tuple[int, int] | None, max_frames: int = 300, num_frames: int | None = None
) -> np.ndarray:
    """The session reference (:func:`session_reference`) of a video, as a training cache of it
    would give: frames cropped by ``vr``, resized to ``size``, the same evenly spread frames.

    Args:
        vr: an open reader (its crop applies; its position is left alone).
        size: ``(H, W)`` the frames are resized to, or ``None``.
        max_frames: frames the median is taken over.
        num_frames: the video's frame count when known (timestamps rows); else the container's
            count, or a counting pass when the container gives none.

    Shape:
        -> ``(H, W)`` uint8.
    """
    n = num_frames if num_frames is not None else (vr.frame_count_hint or vr.num_frames)
    frames = vr.read_frames(reference_indices(int(n), max_frames))
    if len(frames) == 0:
        raise DataError(f"no frames decoded from {vr.path} for its session reference")
    return session_reference(resize_frames(frames, size), max_frames)


def resize_frames(frames: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Resize uint8 ``(T, H, W)`` frames to ``size = (H', W')`` with area interpolation."""
    if size is None or tuple(frames.shape[1:]) == tuple(size):
        return frames
    h, w = int(size[0]), int(size[1])
    out = np.empty((len(frames), h, w), dtype=np.uint8)
    for i, f in enumerate(frames):
        out[i] = cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA)
    return out


class FrameCache:
    """Decode-once uint8 frame cache: a memory-mapped ``(T, H, W)`` ``.npy`` plus a JSON key.

    The key records the source file (path, size, mtime), crop and output size; a cache whose key no
    longer matches is rebuilt. Building writes to a temporary file and renames it, so an interrupted
    build never leaves a cache that looks complete.
    """

    def __init__(self, npy_path: str | os.PathLike) -> None:
        self.path = Path(npy_path)
        self.frames = np.load(self.path, mmap_mode="r")
        if self.frames.ndim != 3 or self.frames.dtype != np.uint8:
            raise DataError(f"frame cache {self.path} is not a uint8 (T,H,W) array")
        meta_path = self.path.with_suffix(".json")
        self.meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}

    def __len__(self) -> int:
        return self.frames.shape[0]

    def __getitem__(self, index):  # noqa: ANN001 - numpy-style indexing
        return self.frames[index]

    @staticmethod
    def key(video: str | os.PathLike, crop: Crop | None, size: tuple[int, int] | None) -> dict:
        p = Path(video).resolve()
        st = p.stat()
        return {
            "version": CACHE_VERSION,
            "source": str(p),
            "source_bytes": st.st_size,
            "source_mtime_ns": st.st_mtime_ns,
            "crop": list(crop) if crop else None,
            "size": list(size) if size else None,
        }

    @classmethod
    def cache_path(
        cls,
        video: str | os.PathLike,
        cache_dir: str | os.PathLike,
        crop: Crop | None,
        size: tuple[int, int] | None,
    ) -> Path:
        key = cls.key(video, crop, size)
        digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
        return Path(cache_dir) / f"{Path(video).stem}-{digest}.npy"

    @classmethod
    def build(
        cls,
        video: str | os.PathLike,
        npy_path: str | os.PathLike,
        crop: Crop | str | None = None,
        size: tuple[int, int] | None = None,
        chunk_size: int = 256,
    ) -> FrameCache:
        """Decode ``video`` once into ``npy_path`` (optionally cropped and resized)."""
        crop = parse_crop(crop)
        npy_path = Path(npy_path)
        with VideoReader(video, crop=crop, timestamps=None) as vr:
            num_frames = vr.num_frames
            h, w = (int(size[0]), int(size[1])) if size else (vr.height, vr.width)
            with atomic_path(npy_path) as tmp:
                arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(num_frames, h, w))
                n = 0
                for start, frames in vr.iter_chunks(chunk_size):
                    arr[start : start + len(frames)] = resize_frames(frames, (h, w))
                    n = start + len(frames)
                arr.flush()
                del arr
                if n != num_frames:
                    raise DataError(
                        f"{video}: decoded {n} frames on the second pass, {num_frames} on the first"
                    )
        write_json_atomic(
            npy_path.with_suffix(".json"), {**cls.key(video, crop, size), "num_frames": num_frames}
        )
        return cls(npy_path)

    @classmethod
    def get_or_build(
        cls,
        video: str | os.PathLike,
        cache_dir: str | os.PathLike,
        crop: Crop | str | None = None,
        size: tuple[int, int] | None = None,
    ) -> FrameCache:
        """Open the matching cache in ``cache_dir``, building it first when absent or stale."""
        crop = parse_crop(crop)
        path = cls.cache_path(video, cache_dir, crop, size)
        meta_path = path.with_suffix(".json")
        if path.exists() and meta_path.exists():
            meta = json.loads(meta_path.read_text())
            if {k: meta.get(k) for k in cls.key(video, crop, size)} == cls.key(video, crop, size):
                return cls(path)
        return cls.build(video, path, crop=crop, size=size)
