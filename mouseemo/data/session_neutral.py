"""Each session's own neutral face: which frames are its baseline.

Dolensek et al. (2020) read an animal's expressions as changes from *its own* neutral face. The one
rule for which frames those are is :meth:`mouseemo.data.events.Events.baseline_mask`: the frames in
the session's ``neutral`` event windows when its ``events.csv`` has any, else the frames before its
first stimulus. Training (:mod:`mouseemo.models.hog_proto_module`), ``mouseemo prototypes`` and
``mouseemo predict --neutral own`` all take a session's neutral through it, and spread the frames
they average with :func:`baseline_indices`.

When a session has no baseline (no ``events.csv``, or a stimulus at its very start),
:func:`neutral_frames` returns ``None`` and the caller falls back to the session reference (the
pixel-wise median frame, :func:`mouseemo.data.video.session_reference`) with a warning that names the
session: a fallback is never silent.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

from mouseemo.data.events import read_events
from mouseemo.data.session import Session
from mouseemo.data.video import reference_indices

log = logging.getLogger(__name__)


def session_baseline_mask(session: Session, times: np.ndarray) -> np.ndarray | None:
    """The session's baseline frames (:meth:`~mouseemo.data.events.Events.baseline_mask` of its
    ``events.csv``), or ``None`` when it has no ``events.csv``.

    Shape:
        times ``(T,)`` -> ``(T,)`` bool.
    """
    if session.events_path is None:
        return None
    return read_events(session.events_path).baseline_mask(times)


def baseline_indices(mask: np.ndarray, max_frames: int = 300) -> np.ndarray:
    """Indices of up to ``max_frames`` of the ``mask``'s frames, spread evenly over them.

    Shape:
        ``(T,)`` bool -> ``(min(max_frames, mask.sum()),)`` int64.
    """
    idx = np.flatnonzero(mask)
    return idx[reference_indices(len(idx), max_frames)]


def neutral_frames(session: Session, times: np.ndarray, max_frames: int = 300) -> np.ndarray | None:
    """Indices of up to ``max_frames`` baseline frames spread evenly, or ``None`` (with a warning)
    when the session has no baseline and the caller must use the session reference.
    """
    mask = session_baseline_mask(session, times)
    if mask is None or not mask.any():
        why = (
            "has no events.csv"
            if mask is None
            else "has no baseline frame (no neutral window, and no frame before its first stimulus)"
        )
        msg = (
            f"session {session.name} ({session.path}) {why}: its HOG neutral is the session reference "
            "(the median frame) instead of its baseline frames"
        )
        log.warning(msg)
        warnings.warn(msg, UserWarning, stacklevel=2)
        return None
    return baseline_indices(mask, max_frames)
