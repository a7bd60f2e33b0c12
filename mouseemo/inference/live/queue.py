"""The bounded queue between the capture and scoring threads: a full queue drops its oldest frame."""

from __future__ import annotations

import collections
import threading

from mouseemo.errors import ConfigError


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
