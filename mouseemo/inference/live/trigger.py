"""Scored frames of a live session and the trigger that acts on them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mouseemo.errors import ConfigError


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
