"""Label controls: training labels that keep their structure but lose their link to the face.

A control model is trained on altered labels and tested on the real ones. If it scores as well as the
model trained on the real labels, the model has learned something other than the face (the layout of
the session, the phase of a trial). ``data.shuffle_train_labels`` picks one:

* ``shift`` (``true``): each training session's labels are circularly shifted by a random offset
  between a quarter and three quarters of the session. The labels keep their durations and order, but
  in a session of equal trials laid end to end a shift keeps their phase within the trial too (shifts
  of whole trials change nothing), so part of the real signal can survive.
* ``permute``: the trials of each training session (``trials.csv``) are permuted and every trial takes
  the labels of another trial at the same time since its onset. Which trials carry a stimulus label
  becomes random while every label stays at its phase within its trial, so a model that reads the
  phase (or the stimulus timing) keeps it, and only one that reads what the animal does loses it.
  Frames outside every trial keep their own labels.

Both depend only on the seed given, so every model of a benchmark sees the same altered labels.
"""

from __future__ import annotations

import numpy as np

from mouseemo.data.trials import Trials
from mouseemo.errors import ConfigError, DataError

#: ``data.shuffle_train_labels`` values (``false`` for none; ``true`` means ``shift``).
CONTROLS = ("shift", "permute")


def control_kind(value: bool | str | None) -> str | None:
    """The control named by ``data.shuffle_train_labels``: ``None``, ``"shift"`` or ``"permute"``."""
    if value is None or value is False or (isinstance(value, str) and value.lower() in ("false", "none", "")):
        return None
    if value is True or (isinstance(value, str) and value.lower() == "true"):
        return "shift"
    if isinstance(value, str) and value in CONTROLS:
        return value
    raise ConfigError(
        f"data.shuffle_train_labels must be false, true (shift) or one of {list(CONTROLS)}; got {value!r}"
    )


def shift_labels(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``labels`` circularly shifted by a random offset in ``[T/4, 3T/4]``."""
    if len(labels) < 2:
        return labels
    return np.roll(labels, int(rng.integers(len(labels) // 4, 3 * len(labels) // 4 + 1)))


def permute_trial_labels(
    labels: np.ndarray, times: np.ndarray, trials: Trials, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Every trial takes the labels of another trial (a random permutation) at the same time since
    its onset; frames outside every trial keep theirs.

    A frame whose time since onset lies beyond the source trial's last frame takes that last frame's
    label, so trials of unequal length work too.

    Returns:
        ``(permuted labels (T,), permutation (K,))``: trial ``k`` took the labels of trial
        ``permutation[k]``.

    Raises:
        DataError: fewer than two trials hold frames, or ``labels`` and ``times`` differ in length.
    """
    labels = np.asarray(labels)
    times = np.asarray(times, dtype=np.float64)
    if len(labels) != len(times):
        raise DataError(f"{trials.source}: {len(labels)} labels but {len(times)} frame times")
    which = trials.index_of(times)
    members = [np.flatnonzero(which == k) for k in range(len(trials))]
    held = [k for k, m in enumerate(members) if len(m)]
    if len(held) < 2:
        raise DataError(
            f"{trials.source or 'trials.csv'}: the permute control needs at least two trials with frames; "
            f"{len(held)} hold any"
        )
    order = rng.permutation(len(held))
    perm = np.arange(len(trials))
    out = labels.copy()
    for dst_pos, src_pos in enumerate(order):
        dst, src = held[dst_pos], held[src_pos]
        perm[dst] = src
        d_idx, s_idx = members[dst], members[src]
        d_off = times[d_idx] - trials.onset[dst]
        s_off = times[s_idx] - trials.onset[src]
        pos = np.clip(np.searchsorted(s_off, d_off - 1e-9), 0, len(s_idx) - 1)
        out[d_idx] = labels[s_idx[pos]]
    return out, perm
