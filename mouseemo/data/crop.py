"""Face crops (``x,y,w,h``) and the project's rule for gray frames."""

from __future__ import annotations

import os

import numpy as np

from mouseemo.errors import ConfigError

Crop = tuple[int, int, int, int]

#: Named crops ``x,y,w,h`` that ``crop`` takes by name. ``der``: the head (eye, ear and snout) of the
#: DER tail-shock clips' 232x140 side view, whose head is at its left (checked by eye on frames of
#: all six public DER mice).
CROP_PRESETS: dict[str, Crop] = {"der": (8, 32, 60, 52)}
#: ``crop`` given as this word means the whole frame (see :func:`resolve_crop`).
WHOLE_FRAME = "none"


def _presets_text() -> str:
    return ", ".join(f"{k} ({','.join(map(str, v))})" for k, v in sorted(CROP_PRESETS.items()))


def parse_crop(text: str | Crop | list | None) -> Crop | None:
    """Parse ``"x,y,w,h"``, a preset name of :data:`CROP_PRESETS` (``"der"``) or a 4-sequence into
    a crop tuple; ``None`` and ``"none"`` (the whole frame) give ``None``."""
    if text is None:
        return None
    if isinstance(text, str) and text.strip().lower() == WHOLE_FRAME:
        return None
    if isinstance(text, str) and text.strip().isidentifier():
        name = text.strip().lower()
        if name not in CROP_PRESETS:
            raise ConfigError(
                f"`crop` {text!r} is no crop preset; presets: {_presets_text()} (or x,y,w,h, or none)"
            )
        return CROP_PRESETS[name]
    if isinstance(text, str):
        parts = [p.strip() for p in text.replace(" ", "").split(",") if p.strip() != ""]
    else:
        parts = list(text)
    try:
        values = tuple(int(p) for p in parts)
    except (TypeError, ValueError):
        raise ConfigError(f"crop must be four integers x,y,w,h; got {text!r}") from None
    if len(values) != 4:
        raise ConfigError(f"crop must be four integers x,y,w,h; got {text!r}")
    x, y, w, h = values
    if x < 0 or y < 0 or w <= 0 or h <= 0:
        raise ConfigError(f"crop x,y must be >= 0 and w,h > 0; got {text!r}")
    return values  # type: ignore[return-value]


def check_crop(crop: Crop | None, height: int, width: int, source: str | os.PathLike = "") -> None:
    """Raise :class:`ConfigError` when ``crop`` does not fit a ``height`` x ``width`` frame."""
    if crop is None:
        return
    x, y, w, h = crop
    if x + w > width or y + h > height:
        where = f" of {source}" if source else ""
        raise ConfigError(
            f"crop x={x},y={y},w={w},h={h} lies outside the {width}x{height} (w x h) frame{where}"
        )


def to_gray(frame: np.ndarray) -> np.ndarray:
    """Gray uint8 frame; colour frames use OpenCV's ``COLOR_BGR2GRAY`` (the project-wide rule)."""
    import cv2  # after mouseemo.data.video has quietened OpenCV and FFmpeg, when imported through it

    if frame.ndim == 2:
        return frame
    if frame.shape[2] == 1:
        return frame[:, :, 0]
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
