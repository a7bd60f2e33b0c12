"""Frame sources of a live session: a camera, a video file played at its own rate, any iterable."""

from __future__ import annotations

import math
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from mouseemo.data.video import VideoReader
from mouseemo.errors import DataError

Clock = Callable[[], float]


class FrameSource(ABC):
    """Where live frames come from: iterate it for ``(capture_time_s, frame)`` pairs.

    ``frame`` is a uint8 gray ``(H, W)`` or BGR ``(H, W, 3)`` image (not cropped: the session crops
    it); ``capture_time_s`` is when it was captured, on a monotonic clock in seconds (the default
    session clock is :func:`time.monotonic`; give the session the same clock as the source, or
    latencies mean nothing). Iteration ends when the source has no more frames. A source that
    blocks without delivering is stopped by the session's stall timeout. The iterator runs on the
    session's capture thread.

    Example, a lab's own camera SDK::

        class MyCamera(FrameSource):
            fps = 100.0

            def __iter__(self):
                while True:
                    img = sdk.grab()  # blocks until the next frame
                    yield time.monotonic(), img

            def close(self):
                sdk.stop()
    """

    #: nominal frames per second (``None``: unknown, measured)
    fps: float | None = None
    #: ``(H, W)`` of its frames when known before the first one arrives (``None``: unknown). The
    #: session then checks the model and runs its first, slowest pass before capture starts, so the
    #: first live frames are neither late nor dropped.
    frame_shape: tuple[int, int] | None = None

    @abstractmethod
    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]: ...

    def close(self) -> None:  # noqa: B027 - optional for sources
        """Release the device or file (called once when the session ends)."""

    def describe(self) -> str:
        return type(self).__name__


class IterableSource(FrameSource):
    """Any iterable of ``(capture_time_s, frame)`` pairs as a :class:`FrameSource`."""

    def __init__(
        self, pairs: Iterable[tuple[float, np.ndarray]], fps: float | None = None, name: str = "frames"
    ):
        self.pairs, self.fps, self.name = pairs, fps, name

    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]:
        return iter(self.pairs)

    def describe(self) -> str:
        return self.name


class CameraSource(FrameSource):
    """An OpenCV camera (``cv2.VideoCapture(index)``); capture time = ``clock()`` when a frame is read.

    Raises:
        DataError: no camera opens at ``index``.
    """

    def __init__(self, index: int | str, clock: Clock = time.monotonic) -> None:
        self.index, self.clock = index, clock
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # our own line instead
        try:
            self.cap = cv2.VideoCapture(index)
            opened = self.cap.isOpened()
        finally:
            cv2.utils.logging.setLogLevel(level)
        if not opened:
            self.cap.release()
            raise DataError(f"no camera at index {index}: OpenCV could not open it")
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and math.isfinite(fps) and 0 < fps < 1000 else None
        w, h = int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.frame_shape = (h, w) if h > 0 and w > 0 else None  # what the driver reports

    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]:
        while True:
            ok, frame = self.cap.read()
            if ok and frame is not None:
                yield self.clock(), frame
            else:  # a camera that stops delivering: retried until the session's stall timeout
                time.sleep(0.005)

    def close(self) -> None:
        self.cap.release()

    def describe(self) -> str:
        return f"camera {self.index}"


class VideoFileSource(FrameSource):
    """A video file played at its own frame rate (``realtime``) or as fast as it decodes.

    Frame ``i`` is delivered at ``start + i / fps`` on ``clock`` (waiting with ``sleep``); its
    capture time is ``clock()`` when delivered. Both are injectable for tests.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        realtime: bool = True,
        clock: Clock = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = Path(path)
        self.realtime, self.clock, self.sleep = realtime, clock, sleep
        self.reader = VideoReader(self.path, timestamps=None)
        self.fps = float(self.reader.fps)
        self.frame_shape = (int(self.reader.full_height), int(self.reader.full_width))

    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]:
        start = None
        i = 0
        for _, frames in self.reader.iter_chunks(8):
            for frame in frames:
                if self.realtime:
                    now = self.clock()
                    start = now if start is None else start
                    wait = start + i / self.fps - now
                    if wait > 0:
                        self.sleep(wait)
                i += 1
                yield self.clock(), frame

    def close(self) -> None:
        self.reader.close()

    def describe(self) -> str:
        return f"video {self.path}" + ("" if self.realtime else " (as fast as possible)")


def read_reference(path: str | os.PathLike) -> np.ndarray:
    """Frames of a reference file: ``.npy`` (uint8 ``(H, W)``, ``(T, H, W)`` or BGR) or an image
    (read as gray)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"`reference` {path}: no such file")
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise DataError(f"`reference` {path}: not a readable .npy ({err})") from None
    else:
        arr = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if arr is None:
            raise DataError(f"`reference` {path}: not a readable image")
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3, 4) or arr.size == 0:
        raise DataError(
            f"`reference` {path}: expected uint8 frames (H, W) or (T, H, W); got {arr.dtype} {arr.shape}"
        )
    return arr
