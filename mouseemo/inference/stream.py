"""Decode ahead: run a chunk iterator (a video decoder) on a background thread.

The thread decodes, and optionally prepares (resize, quality statistics), up to ``depth`` chunks
ahead of the consumer and then waits, so memory stays bounded by ``depth`` chunks whatever the
video's length. OpenCV releases the GIL while it decodes and resizes, so decoding overlaps the
consumer's computation (HOG, a network) instead of adding to it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_END = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def decode_ahead(
    chunks: Iterable[Any],
    prepare: Callable[[Any], T] | None = None,
    depth: int = 2,
    name: str = "mouseemo-decode",
) -> Iterator[T]:
    """Iterate ``prepare(chunk)`` for every chunk, produced on a background thread.

    Args:
        chunks: an iterable of chunks, consumed only by the background thread (e.g.
            ``reader.iter_chunks(256)``; the reader must not be used elsewhere meanwhile).
        prepare: applied to each chunk on the background thread (identity when ``None``).
        depth: chunks that may wait, prepared, for the consumer (the queue's bound, >= 1).
        name: the thread's name.

    Yields:
        Prepared chunks, in order. An exception raised while producing a chunk is re-raised here,
        after the chunks before it. Leaving the loop early (``break``, an exception) stops the
        thread and waits for it, so the caller may close the reader right after.

    Example:
        >>> list(decode_ahead(range(4), prepare=lambda x: x * x))
        [0, 1, 4, 9]
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        it = iter(chunks)
        try:
            for chunk in it:
                if stop.is_set() or not put(prepare(chunk) if prepare is not None else chunk):
                    break
            else:
                put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put(_Failure(exc))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=work, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join()
