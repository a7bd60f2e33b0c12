"""Each session's own neutral face, as HOG models need it for a new animal.

Dolensek et al. (2020) read an animal's expressions as changes from *its own* neutral face: the frames
before the first stimulus of the session. :func:`neutral_frames` says which frames those are (from the
session's ``events.csv``); when a session has none (no ``events.csv``, or a stimulus at its very
start), :func:`neutral_frames` returns ``None`` and the caller falls back to the session reference
(the pixel-wise median frame, :func:`mouseemo.data.video.session_reference`) with a warning that
names the session: a fallback is never silent.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

from mouseemo.data.events import read_events
from mouseemo.data.session import Session
from mouseemo.data.video import reference_indices

log = logging.getLogger(__name__)


def prestimulus_mask(session: Session, times: np.ndarray) -> np.ndarray | None:
    """Frames before the session's first stimulus (a non-``neutral`` event), or ``None`` when unknown.

    ``None`` when the session has no ``events.csv``. A session whose events hold no stimulus at all is
    baseline throughout (every frame is ``True``).

    Shape:
        times ``(T,)`` -> ``(T,)`` bool.
    """
    if session.events_path is None:
        return None
    onsets = read_events(session.events_path).stimulus_onsets()
    times = np.asarray(times, dtype=np.float64)
    if len(onsets) == 0:
        return np.ones(times.shape, dtype=bool)
    return times < onsets[0]


def neutral_frames(session: Session, times: np.ndarray, max_frames: int = 300) -> np.ndarray | None:
    """Indices of up to ``max_frames`` pre-stimulus frames spread evenly, or ``None`` (with a warning)
    when the session has no pre-stimulus baseline and the caller must use the session reference.
    """
    mask = prestimulus_mask(session, times)
    if mask is None or not mask.any():
        why = "has no events.csv" if mask is None else "has no frame before its first stimulus"
        msg = (
            f"session {session.name} ({session.path}) {why}: its HOG neutral is the session reference "
            "(the median frame) instead of its pre-stimulus frames"
        )
        log.warning(msg)
        warnings.warn(msg, UserWarning, stacklevel=2)
        return None
    idx = np.flatnonzero(mask)
    return idx[reference_indices(len(idx), max_frames)]
