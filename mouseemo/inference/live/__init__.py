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

Trial-locked models
    Checkpoints trained with ``reference=trial`` compare each frame with its trial's pre-stimulus
    face; the onsets come from ``LiveOptions.onsets`` (a schedule) or :meth:`LiveSession.trigger`,
    and frames wait for their trial's reference (:mod:`mouseemo.inference.live.trials`).
"""

from __future__ import annotations

from mouseemo.inference.live.queue import DropOldestQueue
from mouseemo.inference.live.session import LiveOptions, LiveSession
from mouseemo.inference.live.sinks import CsvSink
from mouseemo.inference.live.sources import (
    CameraSource,
    FrameSource,
    IterableSource,
    VideoFileSource,
    read_reference,
)
from mouseemo.inference.live.trials import Every, TrialGate
from mouseemo.inference.live.trigger import LiveFrame, Trigger

#: Names of the optional Lab Streaming Layer module (:mod:`mouseemo.inference.live.lsl`), imported
#: when first asked for.
_LSL = ("LslMarkers", "LslSink", "require_pylsl")


def __getattr__(name: str):
    if name in _LSL:
        from mouseemo.inference.live import lsl

        return getattr(lsl, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CameraSource",
    "CsvSink",
    "DropOldestQueue",
    "Every",
    "FrameSource",
    "IterableSource",
    "LiveFrame",
    "LiveOptions",
    "LiveSession",
    "LslMarkers",
    "LslSink",
    "TrialGate",
    "Trigger",
    "VideoFileSource",
    "read_reference",
    "require_pylsl",
]
