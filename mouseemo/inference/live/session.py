"""A live session: capture and scoring threads, the warm-up for a session reference, stopping."""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from mouseemo import __version__
from mouseemo.data.crop import Crop, check_crop, to_gray
from mouseemo.data.session import resolve_crop
from mouseemo.errors import ConfigError, DataError, Terminated
from mouseemo.inference.live.queue import DropOldestQueue
from mouseemo.inference.live.sources import Clock, FrameSource, read_reference  # noqa: F401 - kept importable here
from mouseemo.inference.live.trials import TrialGate
from mouseemo.inference.live.trigger import LiveFrame
from mouseemo.inference.scorers import Scorer
from mouseemo.utils.io import write_json_atomic

log = logging.getLogger(__name__)


@dataclass
class LiveOptions:
    """How a :class:`LiveSession` runs (see ``mouseemo live --help``).

    Attributes:
        crop: ``(x, y, w, h)`` of the source's frames (or a preset name; ``"none"``: the whole
            frame). ``None``: the crop of ``session_meta``, else the model's, else the whole frame
            (:func:`mouseemo.data.session.resolve_crop`).
        session_meta: the ``session.json`` of the session folder the source plays, if any.
        reference_s: seconds of warm-up frames the session reference / own neutral is taken from.
        reference: frames ``(T, H, W)`` or one frame ``(H, W)`` to take it from instead (no warm-up).
        queue_size: frames waiting for the scorer at most (the oldest is dropped).
        drop: ``False``: the source waits for the scorer instead of dropping (file replays).
        duration_s, max_frames: stop after this long (session clock) / this many captured frames.
        stall_timeout_s: stop when the source delivers nothing for this long (wall time).
        status_s: seconds between status lines (``None``: none).
        warmup_max_bytes: the warm-up ends early (with a warning) once its frames hold this much
            memory, so a long ``reference_s`` cannot fill the memory.
        onsets: trial-locked models: stimulus onsets, seconds since the first captured frame (a
            list, or :class:`~mouseemo.inference.live.trials.Every` for a periodic schedule).
        triggers: trial-locked models: accept :meth:`LiveSession.trigger` (``None``: when there
            are no ``onsets``); see :mod:`mouseemo.inference.live.trials`.
    """

    crop: Crop | str | None = None
    session_meta: dict | None = None
    reference_s: float = 10.0
    reference: np.ndarray | None = None
    queue_size: int = 1
    drop: bool = True
    duration_s: float | None = None
    max_frames: int | None = None
    stall_timeout_s: float = 5.0
    status_s: float | None = 1.0
    warmup_max_bytes: int = 1 << 30
    onsets: Iterable[float] | None = None
    triggers: bool | None = None


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
        self.gate: TrialGate | None = None  # trial-locked models: frames wait for their reference
        if getattr(scorer, "reference_kind", None) == "trial":
            o = self.opts
            trig = o.onsets is None if o.triggers is None else o.triggers
            self.gate = TrialGate(scorer.require_baseline(), o.onsets or (), trig, self._warn)
        elif self.opts.onsets is not None or self.opts.triggers:
            raise ConfigError("`onsets` and `triggers` are for trial-locked models (reference=trial)")

    def trigger(self, t: float | None = None) -> None:
        """Mark a stimulus onset at capture time ``t`` (default now, :attr:`clock`) for a trial-locked
        model; thread-safe. The frames of its pre-stimulus window must not be scored yet (see
        :mod:`mouseemo.inference.live.trials`)."""
        if self.gate is None:
            raise ConfigError("trigger() marks stimulus onsets of trial-locked models (reference=trial)")
        self.gate.trigger(self.clock() if t is None else float(t))

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
                    self.stop(f"reached the frame limit ({o.max_frames} frames)")
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
        self.crop = resolve_crop(
            self.opts.crop,
            self.base_scorer.crop,
            self.opts.session_meta,
            model=str(self.base_scorer.path),
            source=self.source.describe(),
        )
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
        if self.gate is None:
            return self._emit_now(scorer, score_fn, items, warmup)
        for run in self.gate.push(scorer, items, warmup, self.stats.first_capture):
            self._emit_now(scorer, score_fn, *run)

    def _emit_now(self, scorer: Scorer, score_fn, items: list, warmup: bool, x=None, refs=None) -> None:
        if x is None:
            x = scorer.prepare(np.stack([g for _, _, g in items]))
        x = torch.from_numpy(np.ascontiguousarray(x))
        t_begin = self.clock()
        ref = {} if refs is None else {"reference": refs.to(scorer.device)}
        s = score_fn(x.to(scorer.device), **ref)
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
            for run in self.gate.flush() if self.gate is not None else ():
                self._emit_now(scorer, score_fn, *run)
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
                self.stop(f"reached the duration limit ({o.duration_s:g} s)")
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
