"""2-D shapes of the face renderer: smooth curves, ellipses, rotations, affine maps, smooth noise."""

from __future__ import annotations

import functools

import cv2
import numpy as np


@functools.lru_cache(maxsize=16)
def catmull_basis(samples: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, samples, endpoint=False)
    # rows: weights of p0..p3 at each t
    return 0.5 * np.stack(
        [-t + 2 * t**2 - t**3, 2 - 5 * t**2 + 3 * t**3, t + 4 * t**2 - 3 * t**3, -(t**2) + t**3], axis=1
    )


def catmull_rom(points: np.ndarray, samples: int = 6) -> np.ndarray:
    """Smooth open curve through ``points`` (``samples`` points per segment)."""
    p = np.vstack([points[:1], points, points[-1:]])
    quads = np.stack([p[:-3], p[1:-2], p[2:-1], p[3:]], axis=1)  # (segments, 4, 2)
    curve = np.einsum("tk,skd->std", catmull_basis(samples), quads).reshape(-1, 2)
    return np.vstack([curve, points[-1:]])


@functools.lru_cache(maxsize=64)
def unit_arc(num: int, start: float, stop: float) -> tuple[np.ndarray, np.ndarray]:
    th = np.deg2rad(np.linspace(start, stop, num, endpoint=stop - start < 360))
    return np.cos(th), np.sin(th)


def ellipse(
    center, a: float, b: float, angle_deg: float = 0.0, num: int = 40, arc=(0.0, 360.0)
) -> np.ndarray:
    """Polygon of an ellipse (or an arc of it) with half-axes ``a`` (x) and ``b`` (y), rotated."""
    cos_t, sin_t = unit_arc(num, float(arc[0]), float(arc[1]))
    x, y = a * cos_t, b * sin_t
    c, s = np.cos(np.deg2rad(angle_deg)), np.sin(np.deg2rad(angle_deg))
    out = np.empty((num, 2))
    out[:, 0] = center[0] + c * x - s * y
    out[:, 1] = center[1] + s * x + c * y
    return out


def rot(points: np.ndarray, center, angle_deg: float) -> np.ndarray:
    c, s = np.cos(np.deg2rad(angle_deg)), np.sin(np.deg2rad(angle_deg))
    d = points - center
    return np.stack([center[0] + c * d[:, 0] - s * d[:, 1], center[1] + s * d[:, 0] + c * d[:, 1]], axis=1)


def affine(scale: float = 1.0, angle_deg: float = 0.0, tx: float = 0.0, ty: float = 0.0) -> np.ndarray:
    c, s = np.cos(np.deg2rad(angle_deg)) * scale, np.sin(np.deg2rad(angle_deg)) * scale
    return np.array([[c, -s, tx], [s, c, ty], [0.0, 0.0, 1.0]])


def smooth_noise(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    x = rng.standard_normal(shape).astype(np.float32)
    if sigma > 0:
        x = cv2.GaussianBlur(x, (0, 0), sigma)
    return x / (x.std() + 1e-6)
