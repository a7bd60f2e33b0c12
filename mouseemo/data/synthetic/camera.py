"""Camera and lighting of a synthetic session: per-session parameters and their slow drifts."""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter


def ou_noise(num: int, dt: float, tau: float, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Stationary Ornstein-Uhlenbeck process sampled every ``dt`` (exact discretisation)."""
    a = np.exp(-dt / tau)
    noise = rng.normal(0.0, sigma * np.sqrt(1 - a * a), num)
    noise[0] = rng.normal(0.0, sigma)
    return lfilter([1.0], [1.0, -a], noise)


def sample_camera(nuisance: float, rng: np.random.Generator) -> dict[str, float]:
    """Per-session camera placement, lighting and sensor parameters scaled by ``nuisance``."""
    return {
        "dx": float(rng.normal(0.0, 7.0 * nuisance)),
        "dy": float(rng.normal(0.0, 5.0 * nuisance)),
        "rot": float(rng.normal(0.0, 2.0 * nuisance)),
        "zoom": float(np.exp(rng.normal(0.0, 0.04 * nuisance))),
        "drift_px": float(1.5 * nuisance),
        "vibration_px": float(0.12 * nuisance),
        "gain": float(np.exp(rng.normal(0.0, 0.12 * nuisance))),
        "offset": float(rng.normal(0.0, 6.0 * nuisance)),
        "gain_drift": float(0.06 * nuisance),
        "offset_drift": float(4.0 * nuisance),
        "noise_std": float(1.5 + 2.5 * nuisance),
        "blur_sigma": float(0.3 + 0.45 * nuisance * rng.uniform(0.5, 1.5)),
        "drop_prob": float(0.002 * nuisance),
        "spout_dx": float(rng.normal(0.0, 3.0)),
        "spout_dy": float(rng.normal(0.0, 3.0)),
    }


def camera_series(
    times: np.ndarray, camera: dict[str, float], nuisance: float, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Per-frame camera pose and brightness: session offset + slow drift + vibration."""
    num = len(times)
    dt = float(np.median(np.diff(times))) if num > 1 else 0.05
    out = {}
    for key, base, drift, vib in (
        ("cam_dx", camera["dx"], camera["drift_px"], camera["vibration_px"]),
        ("cam_dy", camera["dy"], camera["drift_px"], camera["vibration_px"]),
        ("cam_rot", camera["rot"], 0.3 * nuisance, 0.02 * nuisance),
    ):
        slow = ou_noise(num, dt, 40.0, drift, rng)
        out[key] = base + slow + rng.normal(0.0, vib, num) if vib > 0 else base + slow
    out["cam_zoom"] = camera["zoom"] * (1.0 + ou_noise(num, dt, 60.0, 0.005 * nuisance, rng))
    period = float(rng.uniform(40.0, 120.0))
    phase = float(rng.uniform(0, 2 * np.pi))
    wave = np.sin(2 * np.pi * times / period + phase)
    out["gain"] = camera["gain"] * (
        1.0 + camera["gain_drift"] * wave + ou_noise(num, dt, 10.0, 0.01 * nuisance, rng)
    )
    out["offset"] = camera["offset"] + camera["offset_drift"] * ou_noise(num, dt, 30.0, 1.0, rng)
    return out


def camera_clock(
    duration: float, fps: float, drop_prob: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Capture times of a camera running at ``fps`` for ``duration`` s, and which frames were kept.

    The clock has a small rate error and sub-millisecond jitter; dropped frames are isolated (never two
    in a row, never the first or last), so a drop shows as a gap of about ``2 / fps``.

    Returns:
        ``(times, keep)``: float64 (T,) seconds of every capture, bool (T,) True for frames in the video.
    """
    num = max(int(round(duration * fps)), 2)
    skew = rng.normal(0.0, 30e-6)
    jitter = np.clip(rng.normal(0.0, 0.0008, num), -0.2 / fps, 0.2 / fps)
    jitter[0] = 0.0
    times = np.arange(num) / fps * (1.0 + skew) + jitter
    drop = rng.random(num) < drop_prob
    drop[0] = drop[-1] = False
    drop[1:] &= ~drop[:-1]
    return times, ~drop
