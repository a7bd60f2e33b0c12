"""The appearance of one synthetic animal (and its placement in the rig); lengths in the renderer's
320x240 reference pixels."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Identity:
    """Appearance of one animal (and its placement in the rig); all lengths in reference pixels."""

    name: str
    head_scale: float
    offset_x: float
    offset_y: float
    tilt_deg: float
    snout_len: float
    head_height: float
    ear_size: float
    eye_size: float
    fur_level: float
    fur_grain: float
    fur_dir_deg: float
    ear_level: float
    nose_level: float
    bg_level: float
    whisker_level: float
    whisker_len: float
    num_whiskers: int
    texture_seed: int

    def to_dict(self) -> dict:
        return asdict(self)


def sample_identity(rng: np.random.Generator, name: str) -> Identity:
    """Draw the appearance of one animal.

    Coats range from dark (C57BL/6 under IR) to light; face proportions, position and scale in the
    frame differ enough that held-out animals are a real generalisation test.
    """
    fur = float(rng.uniform(70.0, 165.0))
    return Identity(
        name=name,
        head_scale=float(rng.uniform(0.88, 1.08)),
        offset_x=float(rng.normal(0.0, 9.0)),
        offset_y=float(rng.normal(0.0, 7.0)),
        tilt_deg=float(rng.normal(0.0, 4.0)),
        snout_len=float(rng.uniform(0.9, 1.12)),
        head_height=float(rng.uniform(0.92, 1.08)),
        ear_size=float(rng.uniform(0.85, 1.2)),
        eye_size=float(rng.uniform(0.85, 1.15)),
        fur_level=fur,
        fur_grain=float(rng.uniform(0.6, 1.4)),
        fur_dir_deg=float(rng.normal(-8.0, 6.0)),
        ear_level=float(np.clip(fur + rng.uniform(25.0, 65.0), 0, 235)),
        nose_level=float(np.clip(fur + rng.uniform(15.0, 45.0), 0, 230)),
        bg_level=float(rng.uniform(12.0, 45.0)),
        whisker_level=float(np.clip(max(rng.uniform(160.0, 235.0), fur + 70.0), 0, 250)),
        whisker_len=float(rng.uniform(0.85, 1.15)),
        num_whiskers=int(rng.integers(10, 17)),
        texture_seed=int(rng.integers(0, 2**31 - 1)),
    )


#: A fixed, mid-range identity for examples.
DEFAULT_IDENTITY = Identity(
    name="m00", head_scale=1.0, offset_x=0.0, offset_y=0.0, tilt_deg=0.0, snout_len=1.0, head_height=1.0,
    ear_size=1.0, eye_size=1.0, fur_level=120.0, fur_grain=1.0, fur_dir_deg=-8.0, ear_level=165.0,
    nose_level=150.0, bg_level=25.0, whisker_level=200.0, whisker_len=1.0, num_whiskers=13, texture_seed=1,
)  # fmt: skip
