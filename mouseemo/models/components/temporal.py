"""Temporal classifier: per-frame embeddings of a short clip, then causal temporal convolutions.

Expressions are dynamic (onsets, decays, licking and sniffing cycles), so a label can depend on the
frames just before the one being classified. The clip's last frame is the one labelled, and the
convolutions are causal, so the logits never look past it.
"""

from __future__ import annotations

import torch
from torch import nn

from mouseemo.errors import ConfigError


class CausalConvBlock(nn.Module):
    """Left-padded dilated ``Conv1d`` + BatchNorm + ReLU: output ``t`` sees inputs ``<= t`` only.

    Shape:
        ``(B, D_in, T)`` -> ``(B, D_out, T)``.
    """

    def __init__(self, in_dim: int, out_dim: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.pad = (kernel_size - 1) * dilation
        self.conv = nn.Conv1d(in_dim, out_dim, kernel_size, dilation=dilation, bias=False)
        self.norm = nn.BatchNorm1d(out_dim)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(nn.functional.pad(x, (self.pad, 0)))))


class TemporalConvNet(nn.Module):
    """Clip classifier: a frame encoder shared over time, causal temporal convolutions, a linear head.

    Args:
        frame_net: a frame backbone with ``embed(x) -> (B, embed_dim)`` (``SmallCNN``,
            ``TorchvisionBackbone``); its own classification head is removed.
        clip_length: frames per clip ``T`` (> 1); the label is the last frame's.
        num_classes: output logits.
        hidden: channels of the temporal convolutions.
        kernel_size: temporal kernel size.
        dropout: dropout before the head.

    Dilations double (1, 2, 4, ...) until the receptive field covers the whole clip.

    Shape:
        x ``(B, T, C, H, W)`` float -> logits ``(B, K)``; ``embed(x)`` -> ``(B, hidden)``.

    Example:
        >>> from mouseemo.models.components.cnn import SmallCNN
        >>> net = TemporalConvNet(SmallCNN(widths=(8, 16)), clip_length=4, num_classes=7)
        >>> net(torch.zeros(2, 4, 1, 24, 32)).shape
        torch.Size([2, 7])
    """

    def __init__(
        self,
        frame_net: nn.Module,
        clip_length: int = 8,
        num_classes: int = 7,
        hidden: int = 128,
        kernel_size: int = 3,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if int(clip_length) < 2:
            raise ConfigError(f"a temporal model needs clip_length >= 2; got {clip_length}")
        if not hasattr(frame_net, "embed") or not hasattr(frame_net, "embed_dim"):
            raise ConfigError(f"{type(frame_net).__name__} has no embed()/embed_dim to use per frame")
        if kernel_size < 2:
            raise ConfigError(f"temporal kernel_size must be >= 2; got {kernel_size}")
        # only the frame embeddings are used: a head left in place would get no gradient
        if isinstance(getattr(frame_net, "head", None), nn.Module):
            frame_net.head = None
        self.frame_net = frame_net
        self.clip_length = int(clip_length)
        self.num_classes = num_classes
        self.embed_dim = hidden
        blocks, dim, reach, dilation = [], frame_net.embed_dim, 1, 1
        while reach < self.clip_length:
            blocks.append(CausalConvBlock(dim, hidden, kernel_size, dilation))
            reach += (kernel_size - 1) * dilation
            dim, dilation = hidden, dilation * 2
        self.temporal = nn.Sequential(*blocks)
        self.receptive_field = reach
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"expected clips (B, T, C, H, W), got shape {tuple(x.shape)}")
        b, t = x.shape[:2]
        if t != self.clip_length:
            raise ValueError(f"expected clips of {self.clip_length} frames, got {t}")
        per_frame = self.frame_net.embed(x.flatten(0, 1)).view(b, t, -1)  # (B, T, D)
        return self.temporal(per_frame.transpose(1, 2))[:, :, -1]  # the last frame's output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.embed(x)))


class MotionStack(nn.Module):
    """Early fusion of motion: the last frame of a short clip plus its differences from the others.

    Whisking, sniffing and licking are movements; some expressions differ mainly in them (a
    freezing mouse holds its whiskers still, an escaping one whisks hard), which one frame cannot
    show. The clip ``x_1 .. x_T`` becomes one image with the channels of ``x_T`` followed by
    ``x_T[0] - x_t[0]`` for ``t = T-1, ..., 1`` (the first channel, the frame itself), and a 2D
    backbone classifies it: almost the cost of a frame model, unlike a per-frame encoder over time.

    Args:
        frame_net: a 2D backbone taking ``C + clip_length - 1`` input channels (``C`` channels per
            clip frame: 1 for gray frames, 2 with a session reference).
        clip_length: frames per clip ``T`` (>= 2); at 20 fps, 3 frames span about one whisk cycle.

    Shape:
        x ``(B, T, C, H, W)`` float -> logits ``(B, K)``; ``embed(x)`` -> ``(B, frame_net.embed_dim)``.

    Example:
        >>> from mouseemo.models.components.cnn import SmallCNN
        >>> net = MotionStack(SmallCNN(in_channels=3, widths=(8, 16)), clip_length=3)
        >>> net(torch.zeros(2, 3, 1, 24, 32)).shape
        torch.Size([2, 7])
    """

    def __init__(self, frame_net: nn.Module, clip_length: int = 3) -> None:
        super().__init__()
        if int(clip_length) < 2:
            raise ConfigError(f"a motion stack needs clip_length >= 2; got {clip_length}")
        self.frame_net = frame_net
        self.clip_length = int(clip_length)
        self.num_classes = getattr(frame_net, "num_classes", None)
        self.embed_dim = getattr(frame_net, "embed_dim", None)

    def stack(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, C, H, W)`` -> ``(B, C + T - 1, H, W)``."""
        if x.ndim != 5:
            raise ValueError(f"expected clips (B, T, C, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] != self.clip_length:
            raise ValueError(f"expected clips of {self.clip_length} frames, got {x.shape[1]}")
        last = x[:, -1]
        motion = last[:, None, 0] - x[:, :-1, 0].flip(1)  # lags 1 .. T-1
        return torch.cat([last, motion], dim=1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.frame_net.embed(self.stack(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.frame_net(self.stack(x))
