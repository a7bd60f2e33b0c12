"""The Lab Streaming Layer outlet of ``mouseemo live`` (optional: ``pip install "mouseemo[live]"``);
pylsl is imported only when an outlet is made.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import numpy as np

from mouseemo.errors import ConfigError, DataError
from mouseemo.inference.live.sources import Clock
from mouseemo.inference.live.trigger import LiveFrame


def require_pylsl(what: str = "`lsl` output"):
    """The ``pylsl`` module, or a :class:`ConfigError` saying ``what`` needs it and how to install it."""
    try:
        import pylsl
    except ImportError:  # also a missing liblsl (pylsl raises RuntimeError then)
        raise ConfigError(f'{what} needs pylsl: pip install "mouseemo[live]"') from None
    except RuntimeError as err:
        raise ConfigError(
            f"{what}: pylsl cannot load liblsl ({err}); see https://github.com/sccn/liblsl"
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


class LslMarkers:
    """Stimulus onsets from a Lab Streaming Layer marker stream, for trial-locked models: every
    sample of stream ``name`` is an onset at its timestamp, mapped onto ``clock`` (the capture
    clock) and handed to ``on_onset`` (e.g. :meth:`LiveSession.trigger`) from a background thread.

    Raises:
        ConfigError: pylsl is not installed.
        DataError: no stream of that name appears within ``timeout_s``.
    """

    def __init__(
        self,
        name: str,
        on_onset: Callable[[float], None],
        clock: Clock = time.monotonic,
        timeout_s: float = 5.0,
    ):
        pylsl = require_pylsl("`lsl_markers`")
        found = pylsl.resolve_byprop("name", name, timeout=timeout_s)
        if not found:
            raise DataError(
                f"`lsl_markers`: no Lab Streaming Layer stream named {name!r} within {timeout_s:g} s"
            )
        self.inlet = pylsl.StreamInlet(found[0])
        self.offset = pylsl.local_clock() - clock()
        self.on_onset, self._stop = on_onset, threading.Event()
        self.thread = threading.Thread(target=self._pull, name="mouseemo-lsl-markers", daemon=True)
        self.thread.start()

    def _pull(self) -> None:
        while not self._stop.is_set():
            sample, ts = self.inlet.pull_sample(timeout=0.1)
            if sample is not None:
                self.on_onset(ts + self.inlet.time_correction() - self.offset)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(1.0)
