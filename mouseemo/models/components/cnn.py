"""Small convolutional backbones for one-channel face frames (plain ``nn.Module``s)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def conv_bn_relu(in_ch: int, out_ch: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """A compact CNN that trains in minutes on a CPU; the first real model.

    A strided stem, then one stage per further width: a strided conv (halves the resolution) and a
    plain conv. Strided convolutions instead of max-pooling keep the cost low on a CPU
    (about 15 MMAC per 72x96 frame with the default widths).

    Args:
        in_channels: channels of the input (1 for gray frames).
        num_classes: output logits.
        widths: channels of the stem and of each stage.
        dropout: dropout before the linear head.

    Shape:
        x ``(B, C, H, W)`` float -> logits ``(B, K)``; ``embed(x)`` -> ``(B, widths[-1])``.

    Example:
        >>> net = SmallCNN(num_classes=7)
        >>> net(torch.zeros(2, 1, 72, 96)).shape
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
        layers = [conv_bn_relu(in_channels, widths[0], stride=2)]
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [conv_bn_relu(a, b, stride=2), conv_bn_relu(b, b)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(widths[-1], num_classes)
        self.num_classes = num_classes
        self.embed_dim = widths[-1]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.embed(x)))
