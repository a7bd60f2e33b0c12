"""Score frames as they arrive: the engine behind ``mouseemo live``.

A capture thread reads ``(capture_time_s, frame)`` pairs from a :class:`FrameSource` (a camera, a
video file played at its own rate, or any source a lab writes) and puts them in a bounded queue; a
scoring thread takes them out, scores them one at a time with a :class:`~mouseemo.inference.scorers.Scorer`
and hands each result to the sinks (CSV, Lab Streaming Layer) and callbacks (:class:`Trigger`).

Timing and drops
    Capture times come from the source's clock (``time.monotonic`` unless injected); score times
    from the session's clock. When scoring falls behind, the queue (``queue_size`` frames, 1 by
    default) drops its *oldest* frame for each new one: it never grows, and every dropped frame is
    counted (``captured == scored + dropped`` once the session has stopped). With ``drop=False``
    the source waits for the scorer instead (replays of files: every frame is scored).

Stopping
    However the session stops (the source ends, a limit, a stall, :meth:`LiveSession.stop`, Ctrl-C
    or SIGTERM in the main thread, at any moment, the warm-up included), capture stops first and
    the scoring thread then scores every frame it holds (the warm-up's too) before the sinks are
    closed: every scored frame has its CSV row, and ``captured == scored + dropped``. The threads
    are awaited through events they set as they end, not ``Thread.join``, which a signal can cut
    short; a second signal during this clean-up does not cut it short either.

Session reference / own neutral
    Models that compare frames with the session (``--neutral own`` prototypes, checkpoints with a
    session reference) need its first frames: the frames captured during the first ``reference_s``
    seconds (capture time since the first frame) are kept, not scored; at the first frame past that
    window (or when the source ends first) the reference is taken from them
    (:meth:`~mouseemo.inference.scorers.Scorer.for_frames`, the same rule as ``mouseemo predict
    --neutral-until-s``), and then these warm-up frames are scored, in order, before any later frame.
    They are written to the CSV and LSL with their own capture times and ``warmup=1``, they are left
    out of the latency statistics (their latency is the warm-up's length), and triggers ignore them.
    Keeping a warm-up frame is quick, so the warm-up itself drops (almost) nothing; frames captured
    while the warm-up frames are being scored queue and drop as usual. A reference given as frames (``reference=``, e.g. from a
    file) skips the warm-up.

Temporal models see the last frames *scored* as their history: a dropped frame is not in any window.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as _dt
import logging
import math
import os
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from mouseemo import __version__
from mouseemo.data.video import Crop, VideoReader, check_crop, to_gray
from mouseemo.errors import ConfigError, DataError, Terminated
from mouseemo.inference.scorers import Scorer
from mouseemo.utils.io import atomic_path, write_json_atomic

log = logging.getLogger(__name__)

Clock = Callable[[], float]


# -- frame sources -------------------------------------------------------------------------------
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


# -- results, sinks, triggers --------------------------------------------------------------------
@dataclass
class LiveFrame:
    """One scored frame, as the sinks and callbacks get it.

    Attributes:
        index: the frame's number among the captured frames (0-based; dropped ones leave gaps).
        capture_s: capture time (source clock).
        score_s: when its scores were ready (session clock).
        scores: ``(K,)`` float32, in the order of ``names``.
        label: the frame's label.
        names: class / prototype names.
        warmup: a warm-up frame scored after the session reference was taken (see module doc).
    """

    index: int
    capture_s: float
    score_s: float
    scores: np.ndarray
    label: str
    names: list[str]
    warmup: bool = False

    @property
    def latency_s(self) -> float:
        return self.score_s - self.capture_s

    def score(self, name: str) -> float:
        return float(self.scores[self.names.index(name)])


class Trigger:
    """Call ``action(frame)`` when a class's score stays above (or below) a threshold.

    The rule, on the scored, non-warm-up frames in order (``s`` the score of ``name``, ``t`` the
    capture time):

    * a frame is *on* when ``s >= above`` (or ``s <= below``);
    * a *run* starts at the first on-frame while armed and lasts while frames are on (an off-frame
      ends it; dropped frames are not seen and do not end it);
    * it fires at the first frame of a run with ``t - t_run_start >= for_s`` (``for_s=0``: the
      run's first frame), then disarms;
    * it re-arms at the first frame after firing with ``s < release`` (or ``s > release`` for
      ``below``; ``release`` defaults to the threshold: hysteresis when set lower) and
      ``t - t_fired >= refractory_s``; that frame itself starts no run, the next on-frame does.

    ``fired`` lists the frames it fired at. The action runs on the scoring thread: keep it short
    (set a digital line, send a message); an exception in it stops the session.
    """

    def __init__(
        self,
        name: str,
        above: float | None = None,
        below: float | None = None,
        for_s: float = 0.0,
        action: Callable[[LiveFrame], None] | None = None,
        release: float | None = None,
        refractory_s: float = 0.0,
    ) -> None:
        if (above is None) == (below is None):
            raise ConfigError("a Trigger needs exactly one of above= and below=")
        if for_s < 0 or refractory_s < 0:
            raise ConfigError("for_s and refractory_s must be >= 0")
        self.name, self.above, self.below = name, above, below
        self.threshold = float(above if above is not None else below)
        self.release = self.threshold if release is None else float(release)
        self.for_s, self.refractory_s, self.action = float(for_s), float(refractory_s), action
        self.fired: list[LiveFrame] = []
        self._armed, self._run_start, self._last_fire = True, None, None

    def _on(self, s: float) -> bool:
        return s >= self.threshold if self.above is not None else s <= self.threshold

    def _released(self, s: float) -> bool:
        return s < self.release if self.above is not None else s > self.release

    def __call__(self, frame: LiveFrame) -> None:
        if frame.warmup:
            return
        s, t = frame.score(self.name), frame.capture_s
        if not self._armed:
            if self._released(s) and t - self._last_fire >= self.refractory_s:
                self._armed, self._run_start = True, None
            return
        if not self._on(s):
            self._run_start = None
            return
        if self._run_start is None:
            self._run_start = t
        if t - self._run_start >= self.for_s - 1e-9:
            self.fired.append(frame)
            self._armed, self._run_start, self._last_fire = False, None, t
            if self.action is not None:
                self.action(frame)


class CsvSink:
    """One CSV row per scored frame: ``frame,capture_s,score_s,latency_ms,warmup,label,<columns>``.

    Rows are written as whole lines with one unbuffered write each ``flush_s`` seconds (and at
    close), so a crash leaves a file that parses up to its last row. The file appears with its
    header and first rows at once (written under a temporary name, then renamed, creating a
    missing folder): a session that stops before any frame is scored leaves no file (``written``
    is then ``False``), and an existing file is replaced only then.
    """

    def __init__(self, path: str | os.PathLike, columns: list[str], flush_s: float = 0.25) -> None:
        self.path = Path(path)
        self.fh = None
        self.header = ",".join(["frame", "capture_s", "score_s", "latency_ms", "warmup", "label", *columns])
        self.flush_s, self._rows, self._last = flush_s, [], time.monotonic()

    @property
    def written(self) -> bool:
        """Whether the file exists (a row has been written)."""
        return self.fh is not None

    def __call__(self, f: LiveFrame) -> None:
        vals = ",".join(f"{v:.6f}" for v in f.scores.astype(np.float64))
        self._rows.append(
            f"{f.index},{f.capture_s:.6f},{f.score_s:.6f},{1e3 * f.latency_s:.3f},{int(f.warmup)},{f.label},{vals}\n"
        )
        if time.monotonic() - self._last >= self.flush_s:
            self.flush()

    def flush(self) -> None:
        if self._rows:
            text = "".join(self._rows).encode()
            if self.fh is None:
                with atomic_path(self.path) as tmp:
                    fh = open(tmp, "wb", buffering=0)  # noqa: SIM115 - closed by close()
                    try:
                        fh.write(f"{self.header}\n".encode() + text)
                    except BaseException:
                        fh.close()
                        raise
                self.fh = fh  # renamed onto self.path: later rows are appended to it
            else:
                self.fh.write(text)
            self._rows = []
        self._last = time.monotonic()

    def close(self) -> None:
        self.flush()
        if self.fh is None:
            return
        with contextlib.suppress(OSError):
            os.fsync(self.fh.fileno())
        self.fh.close()


def require_pylsl():
    """The ``pylsl`` module, or a :class:`ConfigError` saying how to install it."""
    try:
        import pylsl
    except ImportError:  # also a missing liblsl (pylsl raises RuntimeError then)
        raise ConfigError('--lsl needs pylsl: pip install "mouseemo[live]"') from None
    except RuntimeError as err:
        raise ConfigError(
            f"--lsl: pylsl cannot load liblsl ({err}); see https://github.com/sccn/liblsl"
        ) from None
    return pylsl


class LslSink:
    """A Lab Streaming Layer outlet: one float32 channel per class, one sample per scored frame.

    Each sample's timestamp is its capture time mapped onto ``pylsl.local_clock()``
    (``capture_s + local_clock() - clock()``, the offset measured once at start; exact when the
    source's clock is :func:`time.monotonic`, which LSL's clock also follows on Linux).
    """

    def __init__(
        self, name: str, names: list[str], prefix: str, fps: float | None, clock: Clock = time.monotonic
    ):
        pylsl = require_pylsl()
        info = pylsl.StreamInfo(
            name, "MouseEmotion", len(names), float(fps or pylsl.IRREGULAR_RATE), pylsl.cf_float32,
            f"mouseemo-{name}-{os.getpid()}",
        )  # fmt: skip
        channels = info.desc().append_child("channels")
        for n in names:
            ch = channels.append_child("channel")
            ch.append_child_value("label", f"{prefix}_{n}")
            ch.append_child_value("type", prefix)
        self.outlet = pylsl.StreamOutlet(info)
        self.offset = pylsl.local_clock() - clock()

    def __call__(self, f: LiveFrame) -> None:
        self.outlet.push_sample(f.scores.astype(np.float32).tolist(), f.capture_s + self.offset)

    def close(self) -> None:
        del self.outlet


# -- the bounded queue ---------------------------------------------------------------------------
class DropOldestQueue:
    """A FIFO of at most ``maxsize`` items; :meth:`put` on a full queue drops the oldest item (or,
    with ``block``, waits for room). Memory grows with the items held, not with ``maxsize``.

    Once closed it takes no more items, so ``accepted == taken + dropped`` when :meth:`get` has
    returned ``None``."""

    def __init__(self, maxsize: int = 1) -> None:
        if maxsize < 1:
            raise ConfigError(f"the queue holds at least 1 frame; got {maxsize}")
        self.maxsize = maxsize
        self.items: collections.deque = collections.deque()
        self.cond = threading.Condition()
        self.accepted = 0
        self.dropped = 0
        self.max_seen = 0
        self.closed = False

    def put(self, item, block: bool = False, stop: threading.Event | None = None) -> bool:
        """Add ``item``; ``False`` (and nothing added) once the queue is closed."""
        with self.cond:
            while (
                block
                and not self.closed
                and len(self.items) >= self.maxsize
                and not (stop is not None and stop.is_set())
            ):
                self.cond.wait(0.05)
            if self.closed:
                return False
            if len(self.items) >= self.maxsize:
                self.items.popleft()
                self.dropped += 1
            self.items.append(item)
            self.accepted += 1
            self.max_seen = max(self.max_seen, len(self.items))
            self.cond.notify_all()
            return True

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def get(self):
        """The oldest item; ``None`` once closed and empty."""
        with self.cond:
            while not self.items and not self.closed:
                self.cond.wait(0.05)
            item = self.items.popleft() if self.items else None
            self.cond.notify_all()
            return item


# -- the session ---------------------------------------------------------------------------------
@dataclass
class LiveOptions:
    """How a :class:`LiveSession` runs (see ``mouseemo live --help``).

    Attributes:
        crop: ``(x, y, w, h)`` of the source's frames (``None``: the model's crop, or full frames).
        reference_s: seconds of warm-up frames the session reference / own neutral is taken from.
        reference: frames ``(T, H, W)`` or one frame ``(H, W)`` to take it from instead (no warm-up).
        queue_size: frames waiting for the scorer at most (the oldest is dropped).
        drop: ``False``: the source waits for the scorer instead of dropping (file replays).
        duration_s, max_frames: stop after this long (session clock) / this many captured frames.
        stall_timeout_s: stop when the source delivers nothing for this long (wall time).
        status_s: seconds between status lines (``None``: none).
        warmup_max_bytes: the warm-up ends early (with a warning) once its frames hold this much
            memory, so a long ``reference_s`` cannot fill the memory.
    """

    crop: Crop | None = None
    reference_s: float = 10.0
    reference: np.ndarray | None = None
    queue_size: int = 1
    drop: bool = True
    duration_s: float | None = None
    max_frames: int | None = None
    stall_timeout_s: float = 5.0
    status_s: float | None = 1.0
    warmup_max_bytes: int = 1 << 30


@dataclass
class _Stats:
    captured: int = 0
    scored: int = 0
    warmup: int = 0
    latencies: list = field(default_factory=list)
    busy_s: float = 0.0  # time spent scoring live frames
    first_capture: float | None = None
    last_capture: float | None = None
    last_arrival: float = 0.0  # wall time of the last captured frame


class LiveSession:
    """Score a :class:`FrameSource` live with a scorer; see the module doc.

    ``sinks`` and ``callbacks`` are called with every :class:`LiveFrame` on the scoring thread (sinks
    first); objects with a ``close()`` are closed at the end. :meth:`run` returns the summary dict.
    """

    def __init__(
        self,
        source: FrameSource,
        scorer: Scorer,
        options: LiveOptions | None = None,
        sinks: list | None = None,
        callbacks: list | None = None,
        clock: Clock = time.monotonic,
        status: Callable[[str], None] | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.source, self.base_scorer = source, scorer
        self.opts = options or LiveOptions()
        self.sinks, self.callbacks = list(sinks or []), list(callbacks or [])
        self.clock = clock
        self.status_fn = status
        self.warn_fn = warn or (lambda msg: log.warning(msg))
        self.queue = DropOldestQueue(self.opts.queue_size)
        self.stats = _Stats()
        self.stop_event = threading.Event()
        self.stop_reason: str | None = None
        self.error: BaseException | None = None
        self.warnings: list[str] = []
        self.reference_info: dict | None = None
        #: the scorer in use (its per-session copy once the reference or neutral is set)
        self.scorer: Scorer = scorer
        self.frame_size: tuple[int, int] | None = None
        self._source_done = threading.Event()  # set by the capture thread as it ends
        self._score_done = threading.Event()  # set by the scoring thread as it ends
        self._file_scorer: Scorer | None = None  # prepared from opts.reference
        self._warned_slow = False
        self._waiting = False
        self._t0 = None

    # stopping
    def stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self.stop_event.set()

    def _warn(self, msg: str) -> None:
        self.warnings.append(msg)
        self.warn_fn(msg)

    # threads
    def _capture(self) -> None:
        st, o = self.stats, self.opts
        try:
            for t, frame in self.source:
                if self.stop_event.is_set():
                    break
                st.last_arrival = time.monotonic()
                st.first_capture = t if st.first_capture is None else st.first_capture
                st.last_capture = t
                self._waiting = not o.drop  # a source waiting for the scorer is not stalled
                taken = self.queue.put((st.captured, float(t), frame), block=not o.drop, stop=self.stop_event)
                self._waiting = False
                if not taken:  # the session has stopped
                    break
                st.last_arrival = time.monotonic()
                st.captured += 1
                if o.max_frames is not None and st.captured >= o.max_frames:
                    self.stop(f"captured --max-frames {o.max_frames} frames")
                    break
            else:
                self.stop("the source ended")
        except BaseException as exc:  # noqa: BLE001 - handed to run()
            self.error = self.error or exc
            self.stop(f"the source failed: {exc}")
        finally:
            self._source_done.set()
            self.queue.close()

    def _prepare_frame(self, frame: np.ndarray) -> np.ndarray:
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim not in (2, 3):
            raise DataError(
                f"{self.source.describe()}: frames must be uint8 gray or BGR; got {frame.dtype} {frame.shape}"
            )
        g = to_gray(frame) if frame.ndim == 3 else frame
        c = self.crop
        return g if c is None else g[c[1] : c[1] + c[3], c[0] : c[0] + c[2]]

    def _start_scorer(self, first: np.ndarray) -> None:
        """Check the frame size and set the crop (before capture when the source states its frame
        size, else on the first frame; again if a frame of another size arrives)."""
        h, w = first.shape[:2]
        self.crop = self.opts.crop if self.opts.crop is not None else self.base_scorer.crop
        check_crop(self.crop, h, w, self.source.describe())
        self.frame_size = (h, w)
        ch, cw = (self.crop[3], self.crop[2]) if self.crop else (h, w)
        self.base_scorer.check(
            ch, cw, source=f"{self.source.describe()} (crop {list(self.crop) if self.crop else None})"
        )
        if self.opts.reference is not None and self.base_scorer.needs_reference:
            self._file_scorer = self._reference_scorer(ch, cw)
        # one untimed pass first: the first live frame should not pay for lazy initialisation
        probe = np.full((1, ch, cw), 128, np.uint8)
        x = torch.from_numpy(np.ascontiguousarray(self.base_scorer.prepare(probe)))
        self.base_scorer.stream()(x.to(self.base_scorer.device))

    def _emit(self, scorer: Scorer, score_fn, items: list, warmup: bool) -> None:
        x = torch.from_numpy(np.ascontiguousarray(scorer.prepare(np.stack([g for _, _, g in items]))))
        t_begin = self.clock()
        s = score_fn(x.to(scorer.device))
        labels = scorer.labels(s)
        s_np = s.float().cpu().numpy()
        t_done = self.clock()
        names = scorer.names
        for (idx, t, _), row, lab in zip(items, s_np, labels):
            f = LiveFrame(idx, t, t_done, row, names[int(lab)], names, warmup)
            for fn in self.sinks:
                fn(f)
            for fn in self.callbacks:
                fn(f)
        st = self.stats
        st.scored += len(items)
        if warmup:
            st.warmup += len(items)
        else:
            st.busy_s += t_done - t_begin
            st.latencies.extend(t_done - t for _, t, _ in items)

    def _score(self) -> None:
        o = self.opts
        try:
            scorer, warm, warm_bytes, score_fn = None, [], 0, None
            while True:
                item = self.queue.get()
                if item is None:
                    break
                idx, t, frame = item
                shape = tuple(np.shape(frame)[:2])
                if self.frame_size is None or shape != self.frame_size:
                    if scorer is not None or warm:  # the reference was taken at the old size
                        raise DataError(
                            f"{self.source.describe()}: the frame size changed from "
                            f"{self.frame_size[1]}x{self.frame_size[0]} to {shape[1]}x{shape[0]} (w x h)"
                        )
                    self._start_scorer(np.asarray(frame))  # the source's stated size was not its frames'
                if scorer is None and not warm:
                    scorer = self._file_scorer if self.base_scorer.needs_reference else self.base_scorer
                    if scorer is not None:
                        self.scorer = scorer
                        score_fn = scorer.stream()
                g = self._prepare_frame(frame)
                if scorer is None:  # warm-up: keep frames until reference_s seconds have passed
                    if t - self.stats.first_capture < o.reference_s and warm_bytes < o.warmup_max_bytes:
                        warm.append((idx, t, np.ascontiguousarray(g)))
                        warm_bytes += g.nbytes
                        continue
                    if warm_bytes >= o.warmup_max_bytes:
                        self._warn(
                            f"the warm-up frames reached {warm_bytes / 2**20:.0f} MiB after "
                            f"{t - self.stats.first_capture:.1f} s: the reference is taken from them"
                        )
                    scorer, score_fn = self._end_warmup(warm)
                    warm, warm_bytes = [], 0
                self._emit(scorer, score_fn, [(idx, t, g)], warmup=False)
                self._check_rate()
            if scorer is None and warm:  # the source ended during the warm-up
                scorer, score_fn = self._end_warmup(warm)
        except BaseException as exc:  # noqa: BLE001 - handed to run()
            self.error = self.error or exc
            self.stop(f"scoring failed: {exc}")
        finally:
            self._score_done.set()

    def _reference_frames(self, ref: np.ndarray) -> np.ndarray:
        ref = np.asarray(ref)
        frames = ref[None] if ref.ndim == 2 else ref
        if frames.ndim == 4 and frames.shape[-1] == 3:
            frames = np.stack([to_gray(f) for f in frames])
        c = self.crop
        if c is not None and tuple(frames.shape[1:3]) == tuple(self.frame_size):  # full camera frames
            frames = frames[:, c[1] : c[1] + c[3], c[0] : c[0] + c[2]]
        return np.ascontiguousarray(frames)

    def _reference_scorer(self, height: int, width: int) -> Scorer:
        """The scorer prepared from ``opts.reference``, whose frames must be the source's frames or
        their crop (``height`` x ``width``)."""
        frames = self._reference_frames(self.opts.reference)
        if frames.ndim != 3 or tuple(frames.shape[1:]) != (height, width):
            fh, fw = self.frame_size
            crop = f" or their {width}x{height} crop" if (height, width) != (fh, fw) else ""
            raise DataError(
                f"the reference frames ({'x'.join(map(str, frames.shape[1:][::-1]))}, w x h) are not the "
                f"{fw}x{fh} frames of {self.source.describe()}{crop}"
            )
        scorer = self.base_scorer.for_frames(frames, "the reference file")
        self.reference_info = {"source": "file", "frames": len(frames)}
        return scorer

    def _end_warmup(self, warm: list):
        frames = np.stack([g for _, _, g in warm])
        span = warm[-1][1] - warm[0][1] + (1.0 / self.source.fps if self.source.fps else 0.0)
        scorer = self.base_scorer.for_frames(frames, f"the first {self.opts.reference_s:g} s of the stream")
        self.scorer = scorer
        for note in scorer.notes:
            self._warn(note)
        self.reference_info = {
            "source": "warm-up",
            "seconds": self.opts.reference_s,
            "frames": len(warm),
            "span_s": round(span, 6),
        }
        score_fn = scorer.stream()
        for i in range(0, len(warm), 32):
            self._emit(scorer, score_fn, warm[i : i + 32], warmup=True)
        return scorer, score_fn

    def _rates(self) -> tuple[float | None, float | None]:
        st = self.stats
        live = st.scored - st.warmup
        scoring = live / st.busy_s if live and st.busy_s > 0 else None
        source = self.source.fps
        if (
            not source
            and st.captured > 1
            and st.last_capture is not None
            and st.last_capture > st.first_capture
        ):
            source = (st.captured - 1) / (st.last_capture - st.first_capture)
        return scoring, source

    def _check_rate(self) -> None:
        st = self.stats
        if self._warned_slow or st.scored - st.warmup < 10 or st.busy_s < 0.25:
            return
        scoring, source = self._rates()
        if scoring is not None and source and scoring < source:
            self._warned_slow = True
            self._warn(
                f"the model scores {scoring:.1f} frames/s, below the source's {source:.1f} frames/s: "
                "frames are being dropped"
                if self.opts.drop
                else f"the model scores {scoring:.1f} frames/s, below the source's {source:.1f} frames/s"
            )

    def status_line(self) -> str:
        st = self.stats
        lat = np.asarray(st.latencies[-1000:]) * 1e3
        dropped = self.queue.dropped
        med = f"{np.median(lat):.1f}" if len(lat) else "-"
        p99 = f"{np.percentile(lat, 99):.1f}" if len(lat) else "-"
        warm = (
            " (warm-up)"
            if hasattr(self, "crop") and self.reference_info is None and self.base_scorer.needs_reference
            else ""
        )
        return (
            f"live {self.clock() - self._t0:6.1f} s{warm}: captured {st.captured}, scored {st.scored}, "
            f"dropped {dropped} ({100.0 * dropped / max(st.captured, 1):.1f}%), latency median {med} ms, p99 {p99} ms"
        )

    def run(self) -> dict:
        """Run until the source ends, a limit is reached, the source stalls, or :meth:`stop`
        (Ctrl-C and SIGTERM stop it too); every frame taken from the queue is scored and written
        before it returns, so ``captured == scored + dropped``. Errors of the source, the model or
        a callback are re-raised after the clean-up."""
        self._t0 = self.clock()
        self.started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        capture = threading.Thread(target=self._capture, name="mouseemo-live-capture", daemon=True)
        scoring = threading.Thread(target=self._score, name="mouseemo-live-score", daemon=True)
        try:
            shape = getattr(self.source, "frame_shape", None)
            if shape is not None:  # check the model and pay its first pass before frames arrive
                self._start_scorer(np.zeros(tuple(shape), np.uint8))
            self.stats.last_arrival = time.monotonic()
            capture.start()
            scoring.start()
            self._watch()
        except KeyboardInterrupt as exc:
            self.stop("terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted (Ctrl-C)")
        finally:
            # Done events, not Thread.join: a signal that interrupts join() can leave the thread
            # marked finished while it still runs (Python 3.11), and the outputs closed under it.
            with _signals_deferred():
                self.stop_event.set()
                self.queue.close()  # the scorer finishes the frames already taken
                if scoring.ident is not None:
                    self._score_done.wait()
                if capture.ident is not None:
                    self._source_done.wait(1.0)  # a source blocked in its driver is left behind
                for obj in [*self.sinks, *self.callbacks]:
                    close = getattr(obj, "close", None)
                    if close is not None:
                        with contextlib.suppress(Exception):
                            close()
                with contextlib.suppress(Exception):
                    self.source.close()
        self.stats.dropped = self.queue.dropped
        if self.error is not None:
            raise self.error
        if self.stop_reason is None:
            self.stop_reason = "stopped"
        return self.summary()

    def _watch(self) -> None:
        """Until the scoring thread ends: stop at the duration or a stall, print status lines."""
        o = self.opts
        next_status = time.monotonic() + (o.status_s or 0)
        while not self._score_done.wait(0.02):
            now = time.monotonic()
            if o.duration_s is not None and self.clock() - self._t0 >= o.duration_s:
                self.stop(f"ran --duration {o.duration_s:g} s")
            stalled = now - self.stats.last_arrival > o.stall_timeout_s
            if stalled and not self._source_done.is_set() and not self._waiting:
                self.stop(f"no frame from {self.source.describe()} for {o.stall_timeout_s:g} s")
            if self.stop_event.is_set():
                self.queue.close()  # the scorer finishes the frames already queued
            if o.status_s and self.status_fn is not None and now >= next_status:
                self.status_fn(self.status_line())
                next_status = now + o.status_s

    def summary(self) -> dict:
        st = self.stats
        lat = np.asarray(st.latencies) * 1e3
        scoring, source = self._rates()
        scorer = self.scorer
        pct = (lambda q: round(float(np.percentile(lat, q)), 3)) if len(lat) else (lambda q: None)
        return {
            "source": self.source.describe(),
            "source_fps": round(source, 3) if source else None,
            "model": scorer.describe(),
            "columns": ["frame", "capture_s", "score_s", "latency_ms", "warmup", "label", *scorer.columns],
            "crop": list(self.crop) if getattr(self, "crop", None) else None,
            "reference": self.reference_info,
            "frames": {
                "captured": self.queue.accepted,
                "scored": st.scored,
                "dropped": self.queue.dropped,
                "warmup": st.warmup,
                "dropped_fraction": round(self.queue.dropped / self.queue.accepted, 6)
                if self.queue.accepted
                else 0.0,
                "queue_size": self.queue.maxsize,
                "queue_max_seen": self.queue.max_seen,
            },
            "latency_ms": {
                "frames": int(len(lat)),
                "median": pct(50),
                "p99": pct(99),
                "mean": round(float(lat.mean()), 3) if len(lat) else None,
                "max": round(float(lat.max()), 3) if len(lat) else None,
                "measure": "score time minus capture time of each scored frame, warm-up frames left out",
            },
            "scoring_fps": round(scoring, 3) if scoring else None,
            "seconds": round(self.clock() - self._t0, 3) if self._t0 is not None else None,
            "stop_reason": self.stop_reason,
            "warnings": list(self.warnings),
            "device": str(scorer.device),
            "started": getattr(self, "started", None),
            "mouseemo_version": __version__,
        }

    def write_summary(self, path: str | os.PathLike, summary: dict) -> None:
        write_json_atomic(path, summary)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM do not cut the block short (in the main thread; elsewhere signals do not
    arrive anyway): the session is already stopping, and its clean-up scores the frames taken and
    closes the outputs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    old = {sig: signal.signal(sig, lambda signum, frame: None) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in old.items():
            if handler is not None:
                signal.signal(sig, handler)


def read_reference(path: str | os.PathLike) -> np.ndarray:
    """Frames of a reference file: ``.npy`` (uint8 ``(H, W)``, ``(T, H, W)`` or BGR) or an image
    (read as gray)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--reference {path}: no such file")
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise DataError(f"--reference {path}: not a readable .npy ({err})") from None
    else:
        arr = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if arr is None:
            raise DataError(f"--reference {path}: not a readable image")
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3, 4) or arr.size == 0:
        raise DataError(
            f"--reference {path}: expected uint8 frames (H, W) or (T, H, W); got {arr.dtype} {arr.shape}"
        )
    return arr


__all__ = [
    "CameraSource",
    "CsvSink",
    "DropOldestQueue",
    "FrameSource",
    "IterableSource",
    "LiveFrame",
    "LiveOptions",
    "LiveSession",
    "LslSink",
    "Trigger",
    "VideoFileSource",
    "read_reference",
    "require_pylsl",
]
