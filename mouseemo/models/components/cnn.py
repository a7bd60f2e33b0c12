"""Small convolutional backbones for one-channel face frames (plain ``nn.Module``s)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class ConvBlock(nn.Sequential):
    """conv3x3 -> BN -> ReLU -> conv3x3 -> BN -> ReLU -> 2x2 max-pool."""

    def __init__(self, in_ch: int, out_ch: int, dropout: float = 0.0) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Dropout2d(dropout) if dropout > 0 else nn.Identity(),
        )


class SmallCNN(nn.Module):
    """A compact CNN that trains in minutes on a CPU; the first real model.

    Args:
        in_channels: channels of the input (1 for gray frames).
        num_classes: output logits.
        widths: channels of the successive conv blocks (each halves the resolution).
        dropout: dropout before the linear head.

    Shape:
        x ``(B, C, H, W)`` float -> logits ``(B, K)``; ``embed(x)`` -> ``(B, widths[-1])``.

    Example:
        >>> net = SmallCNN(num_classes=7)
        >>> net(torch.zeros(2, 1, 96, 128)).shape
        torch.Size([2, 7])
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 7,
        widths: Sequence[int] = (16, 32, 64, 128),
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        chans = [in_channels, *widths]
        self.features = nn.Sequential(*[ConvBlock(a, b) for a, b in zip(chans[:-1], chans[1:])])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(widths[-1], num_classes)
        self.num_classes = num_classes
        self.embed_dim = widths[-1]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.embed(x)))
