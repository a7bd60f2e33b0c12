"""One scoring stream: every frame of an open video scored by a model, chunk by chunk, in order.

:func:`stream_scores` is the loop behind ``mouseemo predict`` and the face traces of ``mouseemo
correlates``: a background thread decodes chunks at most ``depth`` ahead
(:func:`~mouseemo.inference.stream.decode_ahead`), a second one prepares them (the scorer's resize,
plus any per-frame statistics such as QC), and the calling thread moves each chunk to the device and
scores it. Memory is flat in the video's length. Closing the generator (or leaving the loop) joins
both threads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mouseemo.data.decode import decoded_chunks
from mouseemo.data.video import VideoReader
from mouseemo.data.video_clock import Clock
from mouseemo.inference.scorers import ScoreFn, Scorer
from mouseemo.inference.stream import decode_ahead

#: Bytes of decoded frames that may wait for the computation (sets the default read-ahead depth).
AHEAD_BYTES = 64 << 20


@dataclass
class ScoredChunk:
    """One scored chunk.

    Attributes:
        start: index of its first frame.
        frames: the decoded (cropped, gray) uint8 frames ``(b, H, W)``, before the scorer's resize.
        times: camera-clock times of the frames ``(b,)``.
        scores: ``(b, K)`` float scores on the scorer's device.
        extra: what ``side(frames)`` returned (``None`` without ``side``).
    """

    start: int
    frames: np.ndarray
    times: np.ndarray
    scores: torch.Tensor
    extra: Any = None


def stream_scores(
    vr: VideoReader,
    scorer: Scorer,
    clock: Clock | None = None,
    batch_size: int = 256,
    depth: int | None = None,
    score: ScoreFn | None = None,
    side: Callable[[np.ndarray], Any] | None = None,
    before_chunk: Callable[[], None] | None = None,
    decoder: str = "opencv",
) -> Iterator[ScoredChunk]:
    """Score every frame of ``vr`` (already open, cropped as the model wants) with ``scorer``.

    Args:
        vr: the reader; nothing else may read it while the stream runs.
        scorer: prepares frames (resize) and scores them (``scorer.stream()`` unless ``score``).
        clock: the frame times (default ``vr.clock()``).
        batch_size: frames per chunk.
        depth: chunks decoded ahead (``None``: as many as fit in :data:`AHEAD_BYTES`, 1 to 4).
        score: a scoring function used instead of ``scorer.stream()``.
        side: per-chunk work on the decoded frames, run on the preparing thread (e.g. QC statistics).
        before_chunk: called before each chunk is scored (may raise to stop, e.g. on cancel).
        decoder: ``"opencv"`` (``vr.iter_chunks``), ``"torchcodec"`` or ``"auto"``
            (:func:`mouseemo.data.decode.resolve_decoder` for the scorer's device).

    Raises:
        DataError: the video has more frames than its timestamps file has rows.
    """
    clock = clock or vr.clock()
    score = score or scorer.stream()
    device = scorer.device
    pin = device.type == "cuda"
    depth = depth or max(1, min(4, AHEAD_BYTES // (batch_size * vr.height * vr.width)))

    def prepare_on_side(frames: np.ndarray):
        x = torch.from_numpy(scorer.prepare(frames))
        return (x.pin_memory() if pin else x), (side(frames) if side is not None else None)

    with ThreadPoolExecutor(1, thread_name_prefix="mouseemo-prepare") as pool:

        def prepare(chunk):
            # resize (and side work) run on a side thread, so that the decoding thread only decodes
            # (on a GPU server decoding is the bottleneck); the decode-ahead bound also bounds these
            start, frames = chunk
            return start, frames, pool.submit(prepare_on_side, frames)

        with closing(decode_ahead(decoded_chunks(vr, batch_size, decoder, device), prepare, depth)) as chunks:
            for start, frames, prepared in chunks:
                if before_chunk is not None:
                    before_chunk()
                x, extra = prepared.result()
                t = clock.at(start, len(frames))
                yield ScoredChunk(start, frames, t, score(x.to(device, non_blocking=True)), extra)


__all__ = ["AHEAD_BYTES", "ScoredChunk", "stream_scores"]
