"""``--frames`` lists of ``mouseemo explain``: parsed, checked against the video and bounded."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mouseemo.errors import ConfigError, DataError

#: Most frames one run explains: every frame's maps, image and figure are held until the files are
#: written, so memory grows with the count.
MAX_FRAMES = 500
#: Most integration steps (captum lists every step's weight; the maps barely change past a few hundred).
MAX_IG_STEPS = 1000
_FRAMES_HINT = "`frames` must be frame numbers and ranges such as 10,20,100-120"


def parse_frame_ranges(text: str) -> list[tuple[int, int]]:
    """``"10,20,100-120"`` -> sorted, merged inclusive ranges ``[(10, 10), (20, 20), (100, 120)]``.

    Nothing is expanded, so a range of any length costs the same; :func:`frames_in` checks the
    ranges against a video and lists the frames.

    Raises:
        ConfigError: text that is not frame numbers and ranges, negative numbers, a reversed range.
    """
    ranges: list[tuple[int, int]] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        a_text, sep, b_text = part[1:].partition("-")
        a_text = part[0] + a_text
        try:
            a = int(a_text)
            b = int(b_text) if sep else a
        except ValueError:
            raise ConfigError(f"{_FRAMES_HINT}; got {part!r}") from None
        if a < 0 or b < 0:
            raise ConfigError(f"`frames` must be >= 0; got {part!r}")
        if b < a:
            raise ConfigError(f"{_FRAMES_HINT} (a range goes from low to high); got {part!r}")
        ranges.append((a, b))
    if not ranges:
        raise ConfigError(f"`frames` names no frame: {text!r}")
    merged: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if merged and a <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def frames_in(ranges: Sequence[tuple[int, int]], num_frames: int | None, video=None) -> np.ndarray:
    """The frames of ``ranges`` (:func:`parse_frame_ranges`) as sorted int64 indices.

    Raises:
        DataError: a frame at or past ``num_frames`` (the message names the video's length).
        ConfigError: more than :data:`MAX_FRAMES` frames.
    """
    if num_frames is not None:
        for a, b in ranges:
            if b >= num_frames:
                where = f"{video}" if video is not None else "the video"
                raise DataError(
                    f"frame {max(a, num_frames)} is outside {where}: it has {num_frames} frames"
                    + (f" (0 to {num_frames - 1})" if num_frames else "")
                )
    count = sum(b - a + 1 for a, b in ranges)
    if count > MAX_FRAMES:
        raise ConfigError(
            f"`frames` names {count} frames; explain at most {MAX_FRAMES} in one run (split the list)"
        )
    return np.concatenate([np.arange(a, b + 1, dtype=np.int64) for a, b in ranges])


def parse_frames(text: str) -> np.ndarray:
    """``"10,20,100-120"`` -> sorted unique frame indices (ranges include both ends)."""
    return frames_in(parse_frame_ranges(text), None)
