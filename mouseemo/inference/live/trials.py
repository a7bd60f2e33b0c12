"""Trial-locked models live: stimulus onsets from a schedule or from triggers, and the frames held
until their trial's reference is known (:mod:`mouseemo.inference.trial_scorer`).

Onsets come from a fixed schedule (seconds since the session's first captured frame: ``--onsets``,
``--every``/``--first``), from :meth:`LiveSession.trigger <mouseemo.inference.live.LiveSession.trigger>`
(capture-clock seconds, default now) or from a Lab Streaming Layer marker stream. Each frame is
scored against the reference training gave it: its trial's pre-stimulus face, known once the first
frame at or after the trial's onset arrives, so the frames of a pre-stimulus window wait for it; frames
in no trial against the session reference (warm-up or ``--reference``). With triggers (whose future
is unknown) every frame also waits one pre-stimulus window, in case a trigger makes it part of the
next trial's window: that is the latency of trigger mode. A trigger that arrives later than that is
still used for the frames not yet scored, with a warning.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch

from mouseemo.data.trials import trials_from_onsets
from mouseemo.errors import ConfigError
from mouseemo.inference.trial_scorer import TrialReferences


class Every:
    """A periodic schedule: an onset every ``period`` seconds from ``first`` (seconds since the first
    frame), without end; a :class:`TrialGate` takes its onsets as the frames reach them."""

    def __init__(self, period: float, first: float = 0.0) -> None:
        if not (np.isfinite(period) and period > 0):
            raise ConfigError(f"`every` must be > 0; got {period}")
        if not (np.isfinite(first) and first >= 0):
            raise ConfigError(f"`first` must be >= 0; got {first}")
        self.period, self.first = float(period), float(first)

    def __iter__(self) -> Iterator[float]:
        k = 0
        while True:
            yield self.first + k * self.period
            k += 1


class TrialGate:
    """Hands live frames on, in order, each with its trial reference once that is known.

    Args:
        baseline_s: the model's pre-stimulus window (onsets alone start their trial this long before).
        onsets: a schedule, seconds since the first captured frame (checked as
            :func:`~mouseemo.data.trials.trials_from_onsets` checks onsets), or :class:`Every`.
        triggers: accept :meth:`trigger` (frames then wait one pre-stimulus window).
        warn: called with warnings (a late trigger).
    """

    def __init__(
        self,
        baseline_s: float,
        onsets: Iterable[float] = (),
        triggers: bool = False,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.baseline_s = float(baseline_s)
        if isinstance(onsets, Every):
            if onsets.period < self.baseline_s:
                raise ConfigError(
                    f"`every` {onsets.period:g} s is shorter than the model's {self.baseline_s:g} s "
                    "pre-stimulus window"
                )
            self.onsets: Iterator[float] = iter(onsets)
        else:
            listed = trials_from_onsets(list(onsets), self.baseline_s, "`onsets`").trigger.tolist()
            if any(t < 0 for t in listed):
                raise ConfigError(f"`onsets` are seconds since the first frame, >= 0; got {min(listed):g}")
            self.onsets = iter(listed)
        self._next = next(self.onsets, None)
        self.t0 = 0.0
        self.triggers = bool(triggers)
        self.warn = warn or (lambda msg: None)
        self.refs: TrialReferences | None = None
        self.pending: deque = deque()  # (idx, t, g, x, warmup)
        self.released_until = -np.inf
        self._incoming: list[float] = []
        self._lock = threading.Lock()

    def trigger(self, t: float) -> None:
        """A stimulus onset at capture time ``t`` (thread-safe; used at the next frame)."""
        if not self.triggers:
            raise ConfigError("this live session takes a fixed schedule of onsets, not triggers")
        if not np.isfinite(t):
            raise ConfigError(f"a trigger needs a finite time; got {t}")
        with self._lock:
            self._incoming.append(float(t))

    def _start(self, session_ref: np.ndarray, t0: float) -> None:
        self.refs = TrialReferences(session_ref, self.baseline_s)
        self.t0 = t0

    def _schedule_until(self, t: float) -> None:
        """Add the scheduled onsets up to ``t`` (capture clock)."""
        while self._next is not None and self.t0 + self._next <= t:
            self.refs.add_onset(self.t0 + self._next)
            self._next = next(self.onsets, None)

    def _take_triggers(self) -> None:
        with self._lock:
            incoming, self._incoming = sorted(self._incoming), []
        for t in incoming:
            if t - self.baseline_s <= self.released_until:
                self.warn(
                    f"a trigger at {t:.3f} s arrived after frames of its {self.baseline_s:g} s pre-stimulus "
                    "window were scored; they kept their earlier reference"
                )
            self.refs.add_onset(t)

    def push(self, scorer, items: list, warmup: bool, t0: float) -> list:
        """Take ``items`` (``(index, capture_s, cropped frame)``), return what can be scored now:
        runs ``(items, warmup, x (n, H, W) uint8, references (n, H, W) uint8)``."""
        if self.refs is None:
            self._start(scorer._reference[0, 0].cpu().numpy(), t0)
        self._take_triggers()
        x = scorer.prepare(np.stack([g for _, _, g in items]))
        for (_, t, _), xi in zip(items, x):
            self._schedule_until(t + self.baseline_s)  # the trials this frame may belong to
            self.refs.feed(xi[None], np.array([t]))
        for item, xi in zip(items, x):
            self.pending.append((item, xi, warmup))
        return self._release(final=False)

    def flush(self) -> list:
        """The stream ended: every frame still held, with the references it has."""
        if self.refs is None:
            return []
        self._take_triggers()
        self._schedule_until(self.refs.latest)
        self.refs.finish()
        return self._release(final=True)

    def _release(self, final: bool) -> list:
        out: list = []
        while self.pending:
            (idx, t, g), xi, warm = self.pending[0]
            if not final and (
                (self.triggers and self.refs.latest < t + self.baseline_s) or not self.refs.ready(t)
            ):
                break
            self.pending.popleft()
            self.released_until = t
            if not out or out[-1][3] != warm:
                out.append(([], [], [], warm))
            out[-1][0].append((idx, t, g))
            out[-1][1].append(xi)
            out[-1][2].append(self.refs.references(np.array([t]))[0])
        return [(items, w, np.stack(xs), torch.from_numpy(np.stack(rs))) for items, xs, rs, w in out]


__all__ = ["Every", "TrialGate"]
