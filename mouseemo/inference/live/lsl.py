"""The Lab Streaming Layer outlet of ``mouseemo live`` (optional: ``pip install "mouseemo[live]"``);
pylsl is imported only when an outlet is made.
"""

from __future__ import annotations

import os
import time

import numpy as np

from mouseemo.errors import ConfigError
from mouseemo.inference.live.sources import Clock
from mouseemo.inference.live.trigger import LiveFrame


def require_pylsl():
    """The ``pylsl`` module, or a :class:`ConfigError` saying how to install it."""
    try:
        import pylsl
    except ImportError:  # also a missing liblsl (pylsl raises RuntimeError then)
        raise ConfigError('`lsl` output needs pylsl: pip install "mouseemo[live]"') from None
    except RuntimeError as err:
        raise ConfigError(
            f"`lsl` output: pylsl cannot load liblsl ({err}); see https://github.com/sccn/liblsl"
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
