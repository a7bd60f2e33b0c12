"""The trial schedule of a synthetic session.

The first 15% of the session (at least 3 s) is a ``neutral`` baseline (an explicit event). The LiCl
injection comes at ``duration - max(20% of the duration, 11 s)`` and its event window lasts to the end.
Between them, trials cycle through sucrose 20%, quinine, tail shock, freezing, escape, sucrose 4%, ...,
each in a slot long enough for its response to decay (6-10 s), with the spare time spread between
slots. Sessions of at least 1 minute always contain all seven labels; 3 minutes gives about 13 trials
(a trial every ~11 s).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Trial:
    """One stimulus (or baseline) window.

    Attributes:
        label: emotion the stimulus evokes (``neutral`` for the baseline).
        stimulus: what was delivered: baseline, sucrose, quinine, tail_shock, licl, freezing, escape.
        onset: camera-clock seconds.
        duration: length of the ``events.csv`` window (seconds).
        value: stimulus detail for ``events.csv`` (sucrose %, quinine mM, shock mA, LiCl M; may be "").
        amplitude: peak intensity the stimulus drives (0 for the baseline).
        drive: how long the stimulus drives the emotion (seconds).
    """

    label: str
    stimulus: str
    onset: float
    duration: float
    value: str = ""
    amplitude: float = 0.0
    drive: float = 0.0


# name -> (label, stimulus, value, amplitude); slots hold the window plus time for the response to decay
_TRIAL_KINDS: dict[str, tuple[str, str, str, float]] = {
    "sucrose20": ("pleasure", "sucrose", "20", 1.0),
    "sucrose4": ("pleasure", "sucrose", "4", 0.72),
    "quinine": ("disgust", "quinine", "1", 0.9),
    "shock": ("pain", "tail_shock", "0.6", 1.0),
    "freezing": ("passive_fear", "freezing", "", 0.95),
    "escape": ("active_fear", "escape", "", 0.95),
}
_CYCLE: tuple[str, ...] = ("sucrose20", "quinine", "shock", "freezing", "escape", "sucrose4")
_TASTE_WINDOW = 2.0
_SHOCK_WINDOW = 2.0
_SHOCK_DRIVE = 1.0
_SLOT_DECAY = 4.0  # seconds after a taste/shock window before the next trial may start
_FEAR_DECAY = 2.0
_TRIAL_PAD = 4.0  # extra inter-trial time once every stimulus has had a trial


def minimum_minutes_all_labels() -> float:
    """Shortest session (minutes) whose schedule is guaranteed to contain all seven labels."""
    return 1.0


def build_schedule(duration: float, rng: np.random.Generator) -> list[Trial]:
    """Trials of one session of ``duration`` seconds (see the module docstring), sorted by onset."""
    baseline_end = max(0.15 * duration, 3.0)
    trials = [Trial("neutral", "baseline", 0.0, min(baseline_end, duration))]
    licl_onset = duration - max(0.2 * duration, 11.0)
    has_licl = licl_onset >= baseline_end + 2.0
    start = baseline_end + 1.0
    stop = (licl_onset if has_licl else duration) - 1.0

    planned: list[tuple[str, float, float]] = []  # kind, window, slot
    used = 0.0
    for k in range(10_000):
        kind = _CYCLE[k % len(_CYCLE)]
        if kind == "freezing":
            window = float(rng.uniform(5.5, 8.0))
            slot = window + _FEAR_DECAY
        elif kind == "escape":
            window = float(rng.uniform(2.5, 4.5))
            slot = window + _FEAR_DECAY
        else:
            window = _TASTE_WINDOW if kind != "shock" else _SHOCK_WINDOW
            slot = window + _SLOT_DECAY
        fits_padded = used + slot + _TRIAL_PAD * (len(planned) + 1) <= stop - start
        # the first five trials (one of each stimulus) may skip the padding so that short sessions
        # still show every emotion
        if not fits_padded and not (len(planned) < 5 and used + slot <= stop - start):
            break
        planned.append((kind, window, slot))
        used += slot
    spare = (stop - start - used) / max(len(planned), 1)

    t = start
    num_sucrose = 0
    num_shock = 0
    for kind, window, slot in planned:
        onset = t + (float(rng.uniform(0.1, 0.9)) * spare if spare > 0 else 0.0)
        label, stimulus, value, amp = _TRIAL_KINDS[kind]
        drive = window
        if stimulus == "sucrose":
            amp *= 0.55 + 0.45 * np.exp(-num_sucrose / 4.0)  # satiety lowers the value of sucrose
            num_sucrose += 1
        elif stimulus == "tail_shock":
            if num_shock % 2 == 1:
                value, amp = "0.3", 0.78
            drive = _SHOCK_DRIVE
            num_shock += 1
        amp = float(np.clip(amp * rng.normal(1.0, 0.07), 0.0, 1.0))
        trials.append(Trial(label, stimulus, round(onset, 4), round(window, 4), value, amp, drive))
        t += slot + spare
    if has_licl:
        onset = round(licl_onset, 4)
        window = np.floor((duration - onset) * 1e4) / 1e4  # rounded down: the window ends inside the session
        trials.append(Trial("malaise", "licl", onset, float(window), "0.15", 1.0, float(window)))
    return trials
