"""How many cores other processes keep busy (Linux ``/proc``), to choose the CPU threading mode."""

from __future__ import annotations

import os
import threading
import time


class _OtherLoad:
    """How many cores other processes keep busy, from ``/proc/stat`` minus our own CPU time (Linux).

    Refreshed at most every 0.5 s; before two samples exist, the number of runnable tasks stands in.
    Elsewhere it reports 0 (cores assumed free).
    """

    def __init__(self) -> None:
        self._last: tuple[float, float, float] | None = None
        self._value = 0.0
        self._lock = threading.Lock()
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def _sample(self) -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat") as fh:
                vals = [int(v) for v in fh.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        busy = (sum(vals) - vals[3] - vals[4]) / self._tick  # all but idle and iowait, in seconds
        return time.monotonic(), busy, time.process_time()

    @staticmethod
    def _running_now() -> float:
        """Runnable tasks of other processes right now (``/proc/loadavg`` minus our running threads)."""
        try:
            with open("/proc/loadavg") as fh:
                running = int(fh.read().split()[3].split("/")[0])
            own = 0
            for task in os.listdir("/proc/self/task"):
                with open(f"/proc/self/task/{task}/stat") as fh:
                    own += fh.read().rsplit(")", 1)[1].split()[0] == "R"
        except (OSError, ValueError, IndexError):
            return 0.0
        return float(max(0, running - max(own, 1)))

    def cores(self) -> float:
        with self._lock:
            now = self._sample()
            if now is None:
                return 0.0
            if self._last is None:
                self._last = now
                self._value = self._running_now()
            elif now[0] - self._last[0] >= 0.5:
                wall = now[0] - self._last[0]
                others = (now[1] - self._last[1]) - (now[2] - self._last[2])
                self._value = max(0.0, others / wall)
                self._last = now
            return self._value


_OTHER_LOAD = _OtherLoad()
