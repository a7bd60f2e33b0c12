"""A synthetic two-photon population imaged alongside the face, written like Suite2p output.

Tuning
------
A population of ``N`` ROIs (default 200) is drawn once per animal (the same field of view in every
session of that animal). About 12% of ROIs are not cells (dendrites and neuropil blobs: ``is_cell`` 0,
low classifier probability, untuned). Of the cells:

=============  ========  ==================================================================
preferred      fraction  rate driver
=============  ========  ==================================================================
each emotion   7% x 6    that emotion's latent intensity
``mixed``      12%       weighted sum of two emotions' intensities (weights 0.4-1)
``movement``   16%       one spontaneous face movement: whisking bouts, licking or sniffing
``none``       rest      nothing (spontaneous firing only)
=============  ========  ==================================================================

A movement neuron follows what the face does outside any expression: the exploratory whisking bouts
(``whisk_bout``, the spontaneous part of ``whisk_amp``), the sniffing locked to them, or the licking
rate (the envelope of the lick cycle: at the spout and in spontaneous bouts). The changes of
whisking, sniffing, jaw and tongue that make up an emotion's expression are that emotion's, not
movement drive: otherwise a "sniffing" neuron (sniffing is mostly set by fear in the face model) or
a "licking" neuron driven by the disgust gape would be an emotion neuron under another name.

Firing rate = ``baseline + gain * drive`` (baseline log-normal, median 0.5 Hz; gain 3-10 Hz), drives in
[0, ~1]. Spikes are Poisson per imaging frame; calcium is the spike train convolved with a GCaMP-like
double exponential (rise 50 ms, decay 0.7 s, at the imaging rate), scaled by a per-cell dF/F per
spike. The neuropil is a slow signal shared by the field (plus a little arousal from movement and slow
bleaching) with a small local part; it is ``Fneu`` and leaks into ``F`` with coefficient 0.7. Both get
Gaussian noise. ``spks`` is a deconvolution stand-in: the true spikes scaled by the event amplitude with
multiplicative jitter, plus sparse small false events.

Clock
-----
The microscope runs at ``imaging_fs`` on its own clock: the first frame comes 0.3-1.5 s after the first
camera frame, the clock rate is off by ~1e-4 and wanders by a few milliseconds.
``imaging_timestamps.csv`` maps each imaging frame to camera seconds; the latent intensities and
movements that drive the cells are the per-video-frame truth interpolated onto those times.

Space
-----
ROIs are discs (cells, radius 3-5 px, slightly elliptical) or elongated blobs (non-cells) with Gaussian
``lam`` weights in an ``Ly x Lx`` field (176x176 for 200 ROIs) with few overlaps. ``ops['meanImg']``
renders them over a textured background with dark blood vessels; the optional TIFF movie renders each
ROI's fluorescence at its pixels over the neuropil background, so ROI-weighted means of the movie
approximately reproduce ``F``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.signal import lfilter

from mouseemo.data.synthetic.dynamics import SNIFF_BASE, SNIFF_PER_WHISK, STATES

#: Movement drivers a ``movement`` neuron may follow (truth columns, combined as documented).
MOVEMENT_DRIVERS: tuple[str, ...] = ("whisking", "licking", "sniffing")

#: Rows of the drive matrix: the six emotion intensities, then the movement drivers.
DRIVERS: tuple[str, ...] = STATES + MOVEMENT_DRIVERS

#: Mean of one lick cycle ``clip(sin, 0, 1) ** 1.5`` (:func:`.dynamics.simulate_face`): licking at the
#: spout has a licking-rate envelope of about 1.
LICK_CYCLE_MEAN = float(
    np.mean(np.clip(np.sin(np.linspace(0, 2 * np.pi, 4096, endpoint=False)), 0, 1) ** 1.5)
)

#: Seconds over which the lick cycle is averaged into a licking rate.
LICK_WINDOW_S = 0.3

NEUROPIL_COEFF = 0.7
TAU_RISE = 0.05
TAU_DECAY = 0.7


@dataclass
class Population:
    """Tuning and spatial footprint of every ROI of one field of view."""

    Ly: int
    Lx: int
    is_cell: np.ndarray  # (N,) bool
    prob: np.ndarray  # (N,) classifier probability
    preferred: list[str]
    driver: list[str]
    weights: np.ndarray  # (N, len(DRIVERS))
    baseline: np.ndarray  # Hz
    gain: np.ndarray  # Hz per unit drive
    f0: np.ndarray  # resting fluorescence
    fneu0: np.ndarray  # neuropil level around the ROI
    dff: np.ndarray  # dF/F per spike at the calcium peak
    stat: list[dict]
    shapes: sparse.csr_matrix  # (Ly*Lx, N): footprint of each ROI, lam-weighted mean 1
    background: np.ndarray  # (Ly, Lx) neuropil/vessel image, mean 1

    @property
    def num_neurons(self) -> int:
        return len(self.preferred)


def _field_size(num: int) -> int:
    return int(np.clip(np.ceil(np.sqrt(max(num, 1) * 130.0) / 16.0) * 16, 64, 512))


def _place(num: int, radii: np.ndarray, L: int, rng: np.random.Generator) -> np.ndarray:
    """ROI centres with little overlap (rejection sampling; gives up gracefully when crowded)."""
    centres = np.zeros((num, 2))
    for i in range(num):
        best, best_gap = None, -np.inf
        for _ in range(60):
            c = rng.uniform(radii[i] + 1, L - radii[i] - 1, 2)
            if i == 0:
                best = c
                break
            d = np.hypot(*(centres[:i] - c).T) - 0.9 * (radii[:i] + radii[i])
            gap = d.min()
            if gap > best_gap:
                best, best_gap = c, gap
            if gap > 0:
                break
        centres[i] = best
    return centres


def _footprint(centre, a: float, b: float, angle: float, L: int):
    """Pixels and Gaussian weights of an elliptical ROI."""
    r = int(np.ceil(max(a, b))) + 1
    cy, cx = int(round(centre[0])), int(round(centre[1]))
    yy, xx = np.mgrid[cy - r : cy + r + 1, cx - r : cx + r + 1]
    dy, dx = yy - centre[0], xx - centre[1]
    c, s = np.cos(angle), np.sin(angle)
    u, v = (c * dx + s * dy) / a, (-s * dx + c * dy) / b
    d2 = u * u + v * v
    inside = (d2 <= 1.0) & (yy >= 0) & (yy < L) & (xx >= 0) & (xx < L)
    lam = np.exp(-d2[inside] / (2 * 0.45**2))
    return yy[inside].astype(np.int32), xx[inside].astype(np.int32), lam


def _vessels(L: int, rng: np.random.Generator) -> np.ndarray:
    import cv2

    img = np.zeros((L, L), np.float32)
    for _ in range(int(rng.integers(2, 5))):
        p = rng.uniform(0, L, 2)
        direction = rng.uniform(0, 2 * np.pi)
        pts = [p.copy()]
        for _ in range(12):
            direction += rng.normal(0, 0.3)
            p = p + (L / 10) * np.array([np.cos(direction), np.sin(direction)])
            pts.append(p.copy())
        width = int(rng.integers(2, 6))
        cv2.polylines(img, [np.round(np.array(pts) * 16).astype(np.int32)], False, 1.0, width, cv2.LINE_8, 4)
    return cv2.GaussianBlur(img, (0, 0), 1.0)


def sample_population(num_neurons: int, rng: np.random.Generator) -> Population:
    """Draw the ROIs of one field of view and their tuning (see the module docstring)."""
    import cv2

    num = int(num_neurons)
    L = _field_size(num)
    num_noncell = int(round(0.12 * num))
    is_cell = np.ones(num, bool)
    is_cell[rng.permutation(num)[:num_noncell]] = False

    preferred, driver = [], []
    weights = np.zeros((num, len(DRIVERS)))
    cells = np.flatnonzero(is_cell)
    kinds = np.full(len(cells), "none", dtype=object)
    counts = {emo: int(round(0.07 * len(cells))) for emo in STATES}
    counts["mixed"] = int(round(0.12 * len(cells)))
    counts["movement"] = int(round(0.16 * len(cells)))
    order = rng.permutation(len(cells))
    k = 0
    for kind, cnt in counts.items():
        kinds[order[k : k + cnt]] = kind
        k += cnt
    kind_of = dict(zip(cells.tolist(), kinds.tolist(), strict=True))
    for i in range(num):
        kind = kind_of.get(i, "none")
        if kind in STATES:
            weights[i, DRIVERS.index(kind)] = 1.0
            driver.append(kind)
        elif kind == "mixed":
            pair = rng.choice(len(STATES), 2, replace=False)
            w = rng.uniform(0.4, 1.0, 2)
            weights[i, pair] = w
            driver.append("+".join(f"{STATES[j]}:{wj:.2f}" for j, wj in zip(pair, w, strict=True)))
        elif kind == "movement":
            j = int(rng.integers(len(MOVEMENT_DRIVERS)))
            weights[i, len(STATES) + j] = 1.0
            driver.append(MOVEMENT_DRIVERS[j])
        else:
            driver.append("")
        preferred.append(kind)

    radii = np.where(is_cell, rng.uniform(3.0, 5.0, num), rng.uniform(4.0, 7.0, num))
    centres = _place(num, radii, L, rng)
    stat = []
    cols, rows, vals = [], [], []
    for i in range(num):
        if is_cell[i]:
            aspect = rng.uniform(0.8, 1.25)
            a, b = radii[i] * aspect, radii[i] / aspect
        else:
            a, b = radii[i] * 1.6, radii[i] * 0.35 + 0.8
        ypix, xpix, lam = _footprint(centres[i], a, b, rng.uniform(0, np.pi), L)
        if len(ypix) == 0:  # a centre rounded onto the edge: keep at least its own pixel
            ypix = np.array([int(np.clip(centres[i][0], 0, L - 1))], np.int32)
            xpix = np.array([int(np.clip(centres[i][1], 0, L - 1))], np.int32)
            lam = np.ones(1)
        lam = lam / lam.sum()
        # scaled so that the lam-weighted mean of the footprint is 1: extracting the movie with ``lam``
        # returns the ROI's own fluorescence on top of the background
        shape = lam / np.sum(lam * lam)
        lam = lam.astype(np.float32)
        stat.append(
            {
                "ypix": ypix,
                "xpix": xpix,
                "lam": lam,
                "med": [int(np.median(ypix)), int(np.median(xpix))],
                "npix": int(len(ypix)),
                "npix_norm": float(len(ypix) / (np.pi * 4.0**2)),
                "radius": float(np.sqrt(a * b)),
                "aspect_ratio": float(max(a, b) / min(a, b)),
                "compact": float(1.0 + 0.05 * rng.random()),
                "footprint": float(rng.uniform(0.5, 1.5)),
                "overlap": np.zeros(len(ypix), bool),
                "soma_crop": np.ones(len(ypix), bool),
                "inmerge": 0,
            }
        )
        rows.append(ypix.astype(np.int64) * L + xpix)
        cols.append(np.full(len(ypix), i))
        vals.append(shape)
    shapes = sparse.csr_matrix(
        (np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
        shape=(L * L, num),
    )

    bg = 1.0 + 0.15 * cv2.GaussianBlur(rng.standard_normal((L, L)).astype(np.float32), (0, 0), L / 16)
    bg -= 0.5 * _vessels(L, rng)
    bg = np.clip(bg, 0.2, None) / bg.mean()

    return Population(
        Ly=L,
        Lx=L,
        is_cell=is_cell,
        prob=np.where(is_cell, rng.uniform(0.55, 1.0, num), rng.uniform(0.02, 0.45, num)),
        preferred=preferred,
        driver=driver,
        weights=weights,
        baseline=np.exp(rng.normal(np.log(0.5), 0.5, num)),
        gain=np.where(np.any(weights > 0, axis=1), rng.uniform(3.0, 10.0, num), 0.0),
        f0=np.where(is_cell, rng.uniform(150.0, 600.0, num), rng.uniform(80.0, 200.0, num)),
        fneu0=rng.uniform(100.0, 300.0, num),
        dff=np.where(is_cell, rng.uniform(0.25, 0.8, num), rng.uniform(0.05, 0.2, num)),
        stat=stat,
        shapes=shapes,
        background=bg.astype(np.float32),
    )


def imaging_clock(t_cam_end: float, fs: float, rng: np.random.Generator) -> np.ndarray:
    """Camera-clock times of every imaging frame: constant offset, rate error and slow wander."""
    offset = float(rng.uniform(0.3, 1.5))
    rate_err = float(rng.normal(0.0, 1e-4))
    wander_period = float(rng.uniform(30.0, 90.0))
    num = int(np.floor((t_cam_end - offset - 0.3) * fs))
    if num < 2:
        return np.zeros(0)
    k = np.arange(num)
    return offset + k / fs * (1.0 + rate_err) + 0.002 * np.sin(2 * np.pi * k / fs / wander_period)


def drives_at(t_img: np.ndarray, t_frames: np.ndarray, truth: dict[str, np.ndarray]) -> np.ndarray:
    """Drive matrix (len(DRIVERS), T_img): per-frame series interpolated onto imaging times.

    ``truth`` is :func:`.dynamics.simulate_face`'s output (it holds ``whisk_bout``, which
    ``truth/frames.csv`` does not).
    """
    rows = [np.interp(t_img, t_frames, truth[f"intensity_{s}"]) for s in STATES]
    bout = truth["whisk_bout"]
    movement = {
        "whisking": bout,
        "licking": licking_rate(truth["lick"], t_frames),
        "sniffing": SNIFF_BASE + SNIFF_PER_WHISK * bout,
    }
    rows += [np.interp(t_img, t_frames, movement[m]) for m in MOVEMENT_DRIVERS]
    return np.stack(rows)


def licking_rate(lick: np.ndarray, t_frames: np.ndarray) -> np.ndarray:
    """Licking rate in [0, 1]: the lick cycle averaged over :data:`LICK_WINDOW_S`, ~1 while licking.

    Shape:
        lick, t_frames: ``(T,)`` per video frame -> ``(T,)``.
    """
    lick = np.asarray(lick, dtype=np.float64)
    if len(lick) < 2:
        return np.clip(lick / LICK_CYCLE_MEAN, 0.0, 1.0)
    fps = 1.0 / float(np.median(np.diff(t_frames)))
    width = max(1, int(round(LICK_WINDOW_S * fps)))
    envelope = np.convolve(lick, np.ones(width) / width, mode="same")
    return np.clip(envelope / LICK_CYCLE_MEAN, 0.0, 1.0)


def _ou(num: int, dt: float, tau: float, rng: np.random.Generator) -> np.ndarray:
    a = np.exp(-dt / tau)
    noise = rng.normal(0.0, np.sqrt(1 - a * a), num)
    noise[0] = rng.normal()
    return lfilter([1.0], [1.0, -a], noise)


def simulate_activity(
    pop: Population, drives: np.ndarray, fs: float, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Spikes, calcium, ``F``, ``Fneu`` and ``spks`` of every ROI.

    Args:
        pop: the population.
        drives: (len(DRIVERS), T) from :func:`drives_at`.
        fs: imaging rate (Hz).
        rng: generator.

    Returns:
        dict of float32 arrays (N, T): ``F``, ``Fneu``, ``spks``, ``cell`` (the ROI's own fluorescence,
        without neuropil), plus float64 ``rate`` (Hz) and int ``spikes``.
    """
    num, T = pop.num_neurons, drives.shape[1]
    rate = pop.baseline[:, None] + pop.gain[:, None] * (pop.weights @ drives)
    spikes = rng.poisson(np.clip(rate, 0, None) / fs)
    a_d, a_r = np.exp(-1.0 / (fs * TAU_DECAY)), np.exp(-1.0 / (fs * TAU_RISE))
    n = np.arange(int(fs * 5 * TAU_DECAY) + 2)
    peak = (a_d**n - a_r**n).max()
    calcium = (
        lfilter([1.0], [1.0, -a_d], spikes, axis=1) - lfilter([1.0], [1.0, -a_r], spikes, axis=1)
    ) / peak

    dt = 1.0 / fs
    t = np.arange(T) * dt
    arousal = drives[len(STATES) :].mean(axis=0)
    shared = 0.06 * _ou(T, dt, 8.0, rng) + 0.05 * (arousal - arousal.mean())
    bleach = np.exp(-t / 3600.0)
    local = np.stack([_ou(T, dt, 3.0, rng) for _ in range(num)]) if num else np.zeros((0, T))
    npil = pop.fneu0[:, None] * (1.0 + shared[None] + 0.02 * local) * bleach[None]
    cell = pop.f0[:, None] * (1.0 + pop.dff[:, None] * calcium) * bleach[None]
    noise_sd = 0.025 * pop.f0 + 2.0
    F = cell + NEUROPIL_COEFF * npil + rng.normal(0.0, 1.0, (num, T)) * noise_sd[:, None]
    Fneu = npil + rng.normal(0.0, 1.0, (num, T)) * (0.01 * pop.fneu0[:, None])

    amp = (pop.f0 * pop.dff)[:, None]
    spks = spikes * amp * np.exp(rng.normal(0.0, 0.25, (num, T)))
    false_events = rng.random((num, T)) < 0.01
    spks = spks + false_events * rng.uniform(0.0, 0.2, (num, T)) * amp
    return {
        "F": F.astype(np.float32),
        "Fneu": Fneu.astype(np.float32),
        "spks": spks.astype(np.float32),
        "cell": cell.astype(np.float32),
        "npil": npil.astype(np.float32),
        "rate": rate,
        "spikes": spikes,
    }


def mean_image(pop: Population, activity: dict[str, np.ndarray]) -> np.ndarray:
    """``ops['meanImg']``: neuropil background plus every ROI's mean fluorescence."""
    level = float(np.mean(activity["npil"])) if activity["npil"].size else 150.0
    img = pop.background * level
    img = img + (pop.shapes @ activity["cell"].mean(axis=1)).reshape(pop.Ly, pop.Lx)
    return img.astype(np.float32)


def enhanced_image(mean_img: np.ndarray) -> np.ndarray:
    """``ops['meanImgE']``: a high-pass, contrast-normalised mean image (as Suite2p shows it)."""
    import cv2

    hp = mean_img - cv2.GaussianBlur(mean_img, (0, 0), 4.0)
    lo, hi = np.percentile(hp, [1, 99])
    return np.clip((hp - lo) / (hi - lo + 1e-6), 0, 1).astype(np.float32)


def movie_frames(
    pop: Population, activity: dict[str, np.ndarray], rng: np.random.Generator, chunk: int = 256
) -> Iterator[np.ndarray]:
    """The raw movie, ``chunk`` frames at a time, as uint16 ``(t, Ly, Lx)`` arrays.

    Each ROI's own fluorescence is drawn at its pixels over a background scaled by the neuropil
    signal; shot-like noise is added.
    """
    npil_mean = activity["npil"].mean(axis=0) if activity["npil"].size else None
    T = activity["F"].shape[1]
    for start in range(0, T, chunk):
        stop = min(start + chunk, T)
        rois = (pop.shapes @ activity["cell"][:, start:stop]).T.reshape(stop - start, pop.Ly, pop.Lx)
        level = npil_mean[start:stop] if npil_mean is not None else np.full(stop - start, 150.0)
        frames = pop.background[None] * level[:, None, None] + rois
        frames += rng.normal(0.0, 1.0, frames.shape) * np.sqrt(np.clip(frames, 1.0, None))
        yield np.clip(np.round(frames), 0, 65535).astype(np.uint16)
