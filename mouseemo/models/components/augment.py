"""GPU-friendly augmentation of face frames with kornia (runs on the batch's device)."""

from __future__ import annotations

import kornia.augmentation as K
import torch
from torch import nn


class FaceAugment(nn.Module):
    """Affine jitter, brightness/contrast/gamma, blur, noise and random erasing.

    All magnitudes scale with ``strength`` (0 disables everything). Inputs are float images in [0, 1].

    Shape:
        ``(B, 1, H, W)`` -> ``(B, 1, H, W)``.
    """

    def __init__(
        self,
        strength: float = 1.0,
        shift: float = 0.06,
        rotation_deg: float = 6.0,
        scale: float = 0.08,
        brightness: float = 0.15,
        contrast: float = 0.2,
        gamma: float = 0.2,
        blur_p: float = 0.2,
        noise_std: float = 0.03,
        erase_p: float = 0.25,
    ) -> None:
        super().__init__()
        s = float(strength)
        self.enabled = s > 0
        if not self.enabled:
            self.pipeline = nn.Identity()
            return
        self.pipeline = K.AugmentationSequential(
            K.RandomAffine(
                degrees=rotation_deg * s,
                translate=(shift * s, shift * s),
                scale=(1 - scale * s, 1 + scale * s),
                padding_mode="border",
                p=0.9,
            ),
            K.RandomBrightness(brightness=(1 - brightness * s, 1 + brightness * s), p=0.8),
            K.RandomContrast(contrast=(1 - contrast * s, 1 + contrast * s), p=0.8),
            K.RandomGamma(gamma=(1 - gamma * s, 1 + gamma * s), p=0.5),
            K.RandomGaussianBlur(kernel_size=(5, 5), sigma=(0.1, 1.5 * s + 0.1), p=blur_p),
            K.RandomGaussianNoise(std=noise_std * s, p=0.5),
            K.RandomErasing(scale=(0.02, 0.12 * s + 0.02), ratio=(0.3, 3.3), p=erase_p),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        return self.pipeline(x).clamp_(0.0, 1.0)
