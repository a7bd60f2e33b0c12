"""GPU-friendly augmentation of face frames with kornia (runs on the batch's device).

Every augmentation imitates a nuisance of real recordings: the head shifts a little between
sessions (affine jitter), the IR lighting drifts (brightness, contrast, gamma), the camera is noisy
or out of focus (noise, blur), and paws or the spout occlude the face (random erasing).
"""

from __future__ import annotations

import kornia.augmentation as K
import torch
from torch import nn

from mouseemo.errors import ConfigError


class FaceAugment(nn.Module):
    """Affine jitter, brightness/contrast/gamma, blur, noise and random erasing.

    Every magnitude is scaled by ``strength`` (0 disables everything, 1 is the default recipe, 2
    doubles each range). Clips ``(B, T, C, H, W)`` get the same geometric and photometric draw on
    all their frames, so the motion inside a clip is the face's own.

    Args:
        strength: global factor on every magnitude below.
        shift: largest translation, as a fraction of width/height.
        rotation_deg: largest rotation in degrees.
        scale: largest relative zoom in or out.
        brightness, contrast, gamma: largest relative change of each.
        blur_sigma: largest Gaussian blur sigma in pixels (5x5 kernel).
        blur_p: probability of blurring a frame.
        noise_std: standard deviation of additive Gaussian noise (images in [0, 1]).
        erase_p: probability of erasing a rectangle.
        erase_area: largest erased fraction of the frame.

    Shape:
        ``(B, C, H, W)`` -> same, or ``(B, T, C, H, W)`` -> same; float in [0, 1].

    Example:
        >>> aug = FaceAugment(strength=0.5)
        >>> aug(torch.rand(4, 1, 24, 32)).shape
        torch.Size([4, 1, 24, 32])
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
        blur_sigma: float = 1.5,
        blur_p: float = 0.2,
        noise_std: float = 0.03,
        erase_p: float = 0.25,
        erase_area: float = 0.12,
    ) -> None:
        super().__init__()
        s = float(strength)
        if s < 0:
            raise ConfigError(f"augmentation strength must be >= 0; got {strength}")
        self.strength = s
        self.enabled = s > 0
        if not self.enabled:
            self.frames = self.clips = nn.Identity()
            return

        def ops() -> list[nn.Module]:
            return [
                K.RandomAffine(
                    degrees=rotation_deg * s,
                    translate=(min(shift * s, 1.0), min(shift * s, 1.0)),
                    scale=(max(1 - scale * s, 0.1), 1 + scale * s),
                    padding_mode="border",
                    p=0.9,
                ),
                K.RandomBrightness(brightness=(max(1 - brightness * s, 0.0), 1 + brightness * s), p=0.8),
                K.RandomContrast(contrast=(max(1 - contrast * s, 0.0), 1 + contrast * s), p=0.8),
                K.RandomGamma(gamma=(max(1 - gamma * s, 0.05), 1 + gamma * s), p=0.5),
                K.RandomGaussianBlur(kernel_size=(5, 5), sigma=(0.1, blur_sigma * s + 0.1), p=blur_p),
                K.RandomGaussianNoise(std=noise_std * s, p=0.5),
                K.RandomErasing(scale=(0.02, min(erase_area * s + 0.02, 0.9)), ratio=(0.3, 3.3), p=erase_p),
            ]

        self.frames = K.AugmentationSequential(*ops())
        self.clips = K.VideoSequential(*ops(), data_format="BTCHW", same_on_frame=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        if x.ndim == 4:
            out = self.frames(x)
        elif x.ndim == 5:
            out = self.clips(x)
        else:
            raise ValueError(f"expected (B, C, H, W) frames or (B, T, C, H, W) clips, got {tuple(x.shape)}")
        return out.clamp_(0.0, 1.0)
