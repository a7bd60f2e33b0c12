"""Trial schedule, emotion intensity time courses and facial action units of a synthetic session.

Everything here is a function of time on the camera clock and of a seeded generator; nothing is
rendered. :mod:`mouseemo.data.synthetic.face` turns one row of action units into an image.

Action units (AUs)
------------------
Each AU is a scalar per video frame in loose "grimace-scale" units; the renderer maps them to geometry.

=================  =======  ===================================================================
AU                 neutral  meaning of a positive change
=================  =======  ===================================================================
``ear_angle``      0        ear rotated back (flattened against the head); -1 forward; 1 ~ 40 deg
``ear_pos``        0        ear base lowered and the pinna folded (ears down)
``eye_open``       1        palpebral opening; < 1 orbital tightening, > 1 eyes wide
``nose_bulge``     0        bulging nose bridge
``nose_pos``       0        nose tip drooping toward the mouth; negative = nose up
``nose_fwd``       0        nose tip pushed forward; negative = pulled back toward the mouth
``cheek_bulge``    0        cheek puffed out
``whisker_angle``  0        whisker set point protracted (forward); negative = retracted
``whisk_amp``      ~0.2-.8  amplitude of rhythmic whisking (spontaneous bouts in every state)
``whisk_freq``     ~7 Hz    whisking (and sniffing) frequency
``whisker_phase``  -        whisking phase in radians (integral of ``whisk_freq``)
``jaw_open``       0        lower jaw rotated open (gape)
``jaw_fwd``        0        lower jaw pushed forward; negative = pulled back
``tongue``         0        tongue protruded outside the lick cycle
=================  =======  ===================================================================

Emotion patterns
----------------
An emotion at intensity ``i`` adds ``i * gain[animal, emotion, au] * delta`` to every AU, with the
deltas below (per-animal gains lie in about 0.65-1.45, so animals express the same pattern with
different strength). Each AU is shared by several emotions, in different combinations, so no single
AU identifies an emotion:

=================  ========  =======  =======  =====  ============  ===========
AU                 pleasure  disgust  malaise  pain   passive_fear  active_fear
=================  ========  =======  =======  =====  ============  ===========
``ear_angle``      -0.7      +0.2     +0.5     +1.0   +0.7          +0.9
``ear_pos``        -0.2      +1.0     +0.7     +0.3   0             -0.3
``eye_open``       -0.15     -0.25    -0.5     -0.6   +0.3          +0.35
``nose_bulge``     0         +0.2     0        +1.0   0             0
``nose_pos``       +0.8      -0.8     +0.3     +0.7   0             -0.3
``nose_fwd``       -0.7      +0.2     -0.2     +0.3   0             +0.4
``cheek_bulge``    +0.4      0        0        +0.8   0             +0.3
``whisker_angle``  +0.2      -0.5     -0.4     +0.7   +0.8          +0.9
``whisk_amp``      +0.2      -0.3     -0.7     -0.3   -1.0          +0.8
``whisk_freq``     0         0        -2 Hz    0      0             +3.5 Hz
``jaw_open``       +0.1      +0.8     +0.1     +0.4   0             +0.2
``jaw_fwd``        +0.8      -0.3     -0.2     -0.6   0             0
``tongue``         0         +0.5     0        0      0             0
``sniff``          0         0        -0.5     0      -1.0          +1.0
=================  ========  =======  =======  =====  ============  ===========

Passive fear also freezes the face: the slow random drift of every AU, blinking and licking are
scaled by ``1 - i``. Pain and passive/active fear share "ears back, whiskers forward"; pain and malaise
share "ears back, eyes tightened"; pleasure is the only pattern with ears and jaw forward.

Nuisance columns (not emotions): ``blink`` (0-1 eyelid closure), ``sniff`` (nose oscillation
amplitude, phase-locked to whisking), ``lick`` (0-1 position in the lick cycle: jaw and tongue),
``paw_occlusion`` (0-1 height of a grooming paw over the snout), ``paw_stroke`` (-1..1 grooming stroke),
and the camera: ``cam_dx``/``cam_dy`` (pixels of a 240x320 reference frame), ``cam_rot`` (degrees),
``cam_zoom``, ``gain``, ``offset`` (brightness).

Intensity kinetics
------------------
Each stimulus drives its emotion for ``drive`` seconds with amplitude ``a``; the intensity follows a
first-order rise (time constant ``rise``) after ``latency``, then a first-order decay (``decay``):

================  =========  ==========  =========  ===============================  ============
emotion           latency s  rise tau s  decay s    drive                            amplitude
================  =========  ==========  =========  ===============================  ============
pleasure          0.3        0.5         2.5        2 s of licking sucrose           20%: 1, 4%: .72
disgust           0.2        0.3         3.0        2 s of quinine                   0.9
pain              0.05       0.1         2.0        1 s tail shock                   0.6 mA: 1.0, 0.3 mA: 0.78
malaise           3.0        5.0         120        from the LiCl injection on       1.0
passive_fear      0.2        0.6         1.2        freezing bout (5.5-8 s)          0.95
active_fear       0.05       0.25        0.8        escape bout (2.5-4.5 s)          0.95
================  =========  ==========  =========  ===============================  ============

Thirst: the k-th sucrose trial is scaled by ``0.55 + 0.45 * exp(-k / 4)`` (satiety), so late 4% trials
may stay below the labelling threshold, as real expressions track the changing value of a stimulus.
Amplitudes get a per-trial jitter of about 7%. Intensities are clipped to [0, 1]. A frame's label is the
emotion with the highest intensity when that intensity is >= 0.5, else ``neutral``.

The trial schedule: :mod:`mouseemo.data.synthetic.schedule`; camera and lighting:
:mod:`mouseemo.data.synthetic.camera`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.signal import lfilter

from mouseemo.constants import EMOTIONS
from mouseemo.data.synthetic.camera import camera_series, ou_noise
from mouseemo.data.synthetic.schedule import Trial

#: The six non-neutral emotions, in vocabulary order.
STATES: tuple[str, ...] = EMOTIONS[1:]

#: Action-unit columns of ``truth/frames.csv``, in order.
AU_NAMES: tuple[str, ...] = (
    "ear_angle",
    "ear_pos",
    "eye_open",
    "nose_bulge",
    "nose_pos",
    "nose_fwd",
    "cheek_bulge",
    "whisker_angle",
    "whisk_amp",
    "whisk_freq",
    "whisker_phase",
    "jaw_open",
    "jaw_fwd",
    "tongue",
)

#: Nuisance columns of ``truth/frames.csv`` (behaviour that is not an emotion, and the camera).
NUISANCE_NAMES: tuple[str, ...] = (
    "blink",
    "sniff",
    "lick",
    "paw_occlusion",
    "paw_stroke",
    "cam_dx",
    "cam_dy",
    "cam_rot",
    "cam_zoom",
    "gain",
    "offset",
)

#: Resting value of every AU and nuisance column (a neutral face seen by an unperturbed camera).
NEUTRAL_POSE: dict[str, float] = {
    "ear_angle": 0.0,
    "ear_pos": 0.0,
    "eye_open": 1.0,
    "nose_bulge": 0.0,
    "nose_pos": 0.0,
    "nose_fwd": 0.0,
    "cheek_bulge": 0.0,
    "whisker_angle": 0.0,
    "whisk_amp": 0.4,
    "whisk_freq": 7.0,
    "whisker_phase": 0.0,
    "jaw_open": 0.0,
    "jaw_fwd": 0.0,
    "tongue": 0.0,
    "blink": 0.0,
    "sniff": 0.3,
    "lick": 0.0,
    "paw_occlusion": 0.0,
    "paw_stroke": 0.0,
    "cam_dx": 0.0,
    "cam_dy": 0.0,
    "cam_rot": 0.0,
    "cam_zoom": 1.0,
    "gain": 1.0,
    "offset": 0.0,
}

#: AU deltas of each emotion at intensity 1 (see the module docstring).
EMOTION_AUS: dict[str, dict[str, float]] = {
    "pleasure": {
        "ear_angle": -0.7, "ear_pos": -0.2, "eye_open": -0.15, "nose_pos": 0.8, "nose_fwd": -0.7,
        "cheek_bulge": 0.4, "whisker_angle": 0.2, "whisk_amp": 0.2, "jaw_open": 0.1, "jaw_fwd": 0.8,
    },
    "disgust": {
        "ear_angle": 0.2, "ear_pos": 1.0, "eye_open": -0.25, "nose_bulge": 0.2, "nose_pos": -0.8,
        "nose_fwd": 0.2, "whisker_angle": -0.5, "whisk_amp": -0.3, "jaw_open": 0.8, "jaw_fwd": -0.3,
        "tongue": 0.5,
    },
    "malaise": {
        "ear_angle": 0.5, "ear_pos": 0.7, "eye_open": -0.5, "nose_pos": 0.3, "nose_fwd": -0.2,
        "whisker_angle": -0.4, "whisk_amp": -0.7, "whisk_freq": -2.0, "jaw_open": 0.1, "jaw_fwd": -0.2,
        "sniff": -0.5,
    },
    "pain": {
        "ear_angle": 1.0, "ear_pos": 0.3, "eye_open": -0.6, "nose_bulge": 1.0, "nose_pos": 0.7,
        "nose_fwd": 0.3, "cheek_bulge": 0.8, "whisker_angle": 0.7, "whisk_amp": -0.3, "jaw_open": 0.4,
        "jaw_fwd": -0.6,
    },
    "passive_fear": {
        "ear_angle": 0.7, "eye_open": 0.3, "whisker_angle": 0.8, "whisk_amp": -1.0, "sniff": -1.0,
    },
    "active_fear": {
        "ear_angle": 0.9, "ear_pos": -0.3, "eye_open": 0.35, "nose_pos": -0.3, "nose_fwd": 0.4,
        "cheek_bulge": 0.3, "whisker_angle": 0.9, "whisk_amp": 0.8, "whisk_freq": 3.5, "jaw_open": 0.2,
        "sniff": 1.0,
    },
}  # fmt: skip

#: Valid range of each AU after all contributions are summed.
AU_RANGES: dict[str, tuple[float, float]] = {
    "ear_angle": (-1.2, 1.5),
    "ear_pos": (-0.8, 1.5),
    "eye_open": (0.05, 1.45),
    "nose_bulge": (0.0, 1.5),
    "nose_pos": (-1.3, 1.3),
    "nose_fwd": (-1.3, 1.3),
    "cheek_bulge": (0.0, 1.5),
    "whisker_angle": (-1.2, 1.5),
    "whisk_amp": (0.0, 1.8),
    "whisk_freq": (2.0, 14.0),
    "jaw_open": (0.0, 1.3),
    "jaw_fwd": (-1.2, 1.2),
    "tongue": (0.0, 1.0),
    "sniff": (0.0, 1.5),
}

#: Standard deviation of the slow spontaneous drift of each AU (animals never hold still perfectly).
AU_DRIFT: dict[str, float] = {
    "ear_angle": 0.08,
    "ear_pos": 0.06,
    "eye_open": 0.05,
    "nose_bulge": 0.05,
    "nose_pos": 0.08,
    "nose_fwd": 0.08,
    "cheek_bulge": 0.05,
    "whisker_angle": 0.12,
    "jaw_open": 0.03,
    "jaw_fwd": 0.05,
}

#: Sniffing amplitude outside expressions: ``SNIFF_BASE + SNIFF_PER_WHISK * whisking bout amplitude``.
SNIFF_BASE, SNIFF_PER_WHISK = 0.2, 0.5

#: ``nuisance`` level -> scale of camera motion, lighting drift, noise, dropped frames, grooming.
NUISANCE_LEVELS: dict[str, float] = {"low": 0.35, "medium": 1.0, "high": 1.8}

#: Intensity above which a frame is labelled with its emotion.
LABEL_THRESHOLD = 0.5


@dataclass(frozen=True)
class Kinetics:
    """Latency and first-order rise/decay time constants of one emotion (seconds)."""

    latency: float
    rise: float
    decay: float


KINETICS: dict[str, Kinetics] = {
    "pleasure": Kinetics(0.3, 0.5, 2.5),
    "disgust": Kinetics(0.2, 0.3, 3.0),
    "pain": Kinetics(0.05, 0.1, 2.0),
    "malaise": Kinetics(3.0, 5.0, 120.0),
    "passive_fear": Kinetics(0.2, 0.6, 1.2),
    "active_fear": Kinetics(0.05, 0.25, 0.8),
}


@dataclass
class ExpressionStyle:
    """How one animal expresses emotions: per-emotion AU gains and resting AU offsets."""

    gains: dict[str, dict[str, float]] = field(default_factory=dict)
    offsets: dict[str, float] = field(default_factory=dict)

    def gain(self, emotion: str, au: str) -> float:
        return self.gains.get(emotion, {}).get(au, 1.0)


def sample_style(rng: np.random.Generator) -> ExpressionStyle:
    """Draw one animal's expression style (gains ~ log-normal around 1; small resting offsets)."""
    gains = {
        emo: {au: float(np.clip(np.exp(rng.normal(0.0, 0.2)), 0.65, 1.45)) for au in deltas}
        for emo, deltas in EMOTION_AUS.items()
    }
    offsets = {
        "ear_angle": float(rng.normal(0, 0.15)),
        "ear_pos": float(rng.normal(0, 0.1)),
        "eye_open": float(rng.normal(0, 0.06)),
        "nose_pos": float(rng.normal(0, 0.1)),
        "whisker_angle": float(rng.normal(0, 0.15)),
    }
    return ExpressionStyle(gains=gains, offsets=offsets)


def pose(
    emotion: str = "neutral", intensity: float = 1.0, style: ExpressionStyle | None = None
) -> dict[str, float]:
    """A static row of AUs and nuisance values: ``emotion`` at ``intensity`` on an unperturbed camera.

    Used for figures and tests; a session adds drift, whisking, blinks and camera motion on top.
    """
    style = style or ExpressionStyle()
    row = dict(NEUTRAL_POSE)
    for au, off in style.offsets.items():
        row[au] += off
    if emotion != "neutral":
        if emotion not in EMOTION_AUS:
            raise ValueError(f"unknown emotion {emotion!r}; expected one of {EMOTIONS}")
        for au, delta in EMOTION_AUS[emotion].items():
            row[au] += intensity * style.gain(emotion, au) * delta
    for au, (lo, hi) in AU_RANGES.items():
        row[au] = float(np.clip(row[au], lo, hi))
    return row


# --------------------------------------------------------------------------------------------------
# Time courses


def _response(s: np.ndarray, drive: float, kin: Kinetics) -> np.ndarray:
    """Unit-amplitude response at times ``s`` after onset to a drive of length ``drive``."""
    s = s - kin.latency
    out = np.zeros_like(s)
    during = (s >= 0) & (s < drive)
    out[during] = 1.0 - np.exp(-s[during] / kin.rise)
    after = s >= drive
    peak = 1.0 - np.exp(-drive / kin.rise)
    out[after] = peak * np.exp(-(s[after] - drive) / kin.decay)
    return out


def intensity_traces(trials: list[Trial], times: np.ndarray) -> np.ndarray:
    """Latent intensity of each non-neutral emotion at ``times``.

    Returns:
        float64 array (6, T) in :data:`STATES` order, clipped to [0, 1].
    """
    out = np.zeros((len(STATES), len(times)))
    for trial in trials:
        if trial.label == "neutral" or trial.amplitude <= 0:
            continue
        i = STATES.index(trial.label)
        out[i] += trial.amplitude * _response(times - trial.onset, trial.drive, KINETICS[trial.label])
    return np.clip(out, 0.0, 1.0)


def frame_labels(intensities: np.ndarray) -> np.ndarray:
    """Label per frame: the strongest emotion if its intensity >= 0.5, else ``neutral``."""
    best = np.argmax(intensities, axis=0)
    strong = intensities[best, np.arange(intensities.shape[1])] >= LABEL_THRESHOLD
    names = np.array(STATES, dtype=object)[best]
    return np.where(strong, names, "neutral").astype(object)


def _bouts(
    duration: float, rate: float, length: tuple[float, float], rng: np.random.Generator
) -> list[tuple]:
    """Poisson-timed bouts: list of ``(start, length)``."""
    out = []
    t = rng.exponential(1.0 / rate) if rate > 0 else duration
    while t < duration:
        d = float(rng.uniform(*length))
        out.append((float(t), d))
        t += d + rng.exponential(1.0 / rate)
    return out


def _smooth(x: np.ndarray, dt: float, tau: float) -> np.ndarray:
    a = np.exp(-dt / tau)
    return lfilter([1 - a], [1.0, -a], x, zi=[a * x[0]])[0]


def simulate_face(
    times: np.ndarray,
    trials: list[Trial],
    style: ExpressionStyle,
    nuisance: float,
    camera: dict[str, float],
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """AU and nuisance time series at every capture time.

    Args:
        times: camera capture times (T,), nearly uniform.
        trials: the session schedule.
        style: the animal's expression style.
        nuisance: scale of grooming and camera/lighting drift (see :data:`NUISANCE_LEVELS`).
        camera: session camera parameters from :func:`sample_camera`.
        rng: generator; consumed in a fixed order, so equal seeds give equal series.

    Returns:
        dict with ``intensity_<emotion>`` (6 entries), every AU and nuisance column, each (T,) float64.
    """
    num = len(times)
    duration = float(times[-1]) + 1e-9
    dt = float(np.median(np.diff(times))) if num > 1 else 0.05
    inten = intensity_traces(trials, times)
    out: dict[str, np.ndarray] = {f"intensity_{s}": inten[i] for i, s in enumerate(STATES)}
    freeze = inten[STATES.index("passive_fear")]
    total = inten.sum(axis=0)

    # spontaneous exploratory whisking: telegraph process between rest and whisking bouts
    state = np.zeros(num)
    freq_base = np.full(num, 7.0)
    t = 0.0
    whisking = bool(rng.random() < 0.5)
    while t < duration:
        d = rng.exponential(2.0 if whisking else 3.0) + 0.3
        sel = (times >= t) & (times < t + d)
        state[sel] = float(rng.uniform(0.6, 1.0)) if whisking else float(rng.uniform(0.05, 0.25))
        freq_base[sel] = float(rng.uniform(6.0, 8.5))
        whisking = not whisking
        t += d
    state = _smooth(state, dt, 0.15)
    freq_base = _smooth(freq_base, dt, 0.3)

    for au in AU_NAMES:
        if au == "whisker_phase":
            continue
        base = NEUTRAL_POSE[au] + style.offsets.get(au, 0.0)
        if au == "whisk_amp":
            x = state.copy()
        elif au == "whisk_freq":
            x = freq_base.copy()
        else:
            x = np.full(num, base)
        for i, emo in enumerate(STATES):
            delta = EMOTION_AUS[emo].get(au)
            if delta:
                x += inten[i] * style.gain(emo, au) * delta
        if au in AU_DRIFT:
            x += ou_noise(num, dt, 1.5, AU_DRIFT[au], rng) * (1.0 - 0.9 * freeze)
        lo, hi = AU_RANGES[au]
        out[au] = np.clip(x, lo, hi)
    out["whisker_phase"] = np.mod(
        2 * np.pi * np.concatenate([[0.0], np.cumsum(out["whisk_freq"][:-1] * np.diff(times))]), 2 * np.pi
    )

    out["whisk_bout"] = state.copy()  # the spontaneous part of whisking (neurons.py's movement drive)
    # sniffing goes with whisking (phase-locked in mice); emotions modulate it
    sniff = SNIFF_BASE + SNIFF_PER_WHISK * state
    for i, emo in enumerate(STATES):
        sniff += inten[i] * EMOTION_AUS[emo].get("sniff", 0.0)
    out["sniff"] = np.clip(sniff, *AU_RANGES["sniff"])

    # blinks: brief Gaussian closures, rarer while frozen
    blink = np.zeros(num)
    for t0, _ in _bouts(duration, 0.12, (0.0, 0.0), rng):
        k = int(np.searchsorted(times, t0))
        if k < num and freeze[k] < 0.5:
            lo, hi = np.searchsorted(times, [t0 - 0.25, t0 + 0.25])
            blink[lo:hi] = np.maximum(blink[lo:hi], np.exp(-0.5 * ((times[lo:hi] - t0) / 0.06) ** 2))
    out["blink"] = blink

    # licking: at the spout during taste windows (quinine: a few licks, then the mouse stops),
    # and short spontaneous bouts so that licking alone does not give away a taste trial
    lick = np.zeros(num)
    lick_windows = []
    for tr in trials:
        if tr.stimulus == "sucrose":
            lick_windows.append((tr.onset, tr.duration))
        elif tr.stimulus == "quinine":
            lick_windows.append((tr.onset, 0.7))
    for t0, d in _bouts(duration, 1 / 25.0, (0.5, 1.5), rng):
        k = int(np.searchsorted(times, t0))
        if k < num and total[k] < 0.2:
            lick_windows.append((t0, d))
    for t0, d in lick_windows:
        lick_hz = float(rng.uniform(6.0, 7.5))
        sel = (times >= t0) & (times < t0 + d)
        cycle = np.sin(2 * np.pi * lick_hz * (times[sel] - t0))
        lick[sel] = np.maximum(lick[sel], np.clip(cycle, 0, 1) ** 1.5)
    out["lick"] = lick * (1.0 - freeze)

    # grooming bouts bring a paw over the snout; only when no emotion is active
    paw = np.zeros(num)
    stroke = np.zeros(num)
    stim_windows = [(tr.onset - 1.0, tr.onset + tr.duration + 3.0) for tr in trials if tr.label != "neutral"]
    for t0, d in _bouts(duration, nuisance / 60.0, (1.5, 4.0), rng):
        if any(a < t0 + d and t0 < b for a, b in stim_windows):
            continue
        sel = (times >= t0) & (times < t0 + d)
        s = times[sel] - t0
        paw[sel] = np.clip(np.minimum(s, d - s) / 0.3, 0, 1) * float(rng.uniform(0.7, 1.0))
        stroke[sel] = np.sin(2 * np.pi * float(rng.uniform(3.0, 5.0)) * s)
    out["paw_occlusion"] = paw
    out["paw_stroke"] = stroke

    out.update(camera_series(times, camera, nuisance, rng))
    return out
