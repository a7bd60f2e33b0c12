"""Where scored frames of a live session go: a CSV file."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import numpy as np

from mouseemo.inference.live.trigger import LiveFrame
from mouseemo.utils.io import atomic_path


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
