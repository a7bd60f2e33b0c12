"""Frame normalisation shared by every learned model (classifiers and the joint face encoder)."""

from __future__ import annotations

import torch


def to_unit_float(frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames -> float32 in [0, 1]; float frames are returned as they are."""
    return frames.float().div_(255.0) if frames.dtype == torch.uint8 else frames


def standardize_frames(frames: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Zero mean, unit variance per image plane (per frame, per channel), float.

    Removes brightness and contrast differences between animals, sessions and lighting drift.
    uint8 input is scaled to [0, 1] first.

    Shape:
        ``(..., H, W)`` -> same.
    """
    x = to_unit_float(frames)
    mean = x.mean(dim=(-2, -1), keepdim=True)
    std = x.std(dim=(-2, -1), keepdim=True)
    return (x - mean) / (std + eps)
