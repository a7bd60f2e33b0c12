"""Networks of the joint face <-> neural encoder (plain ``nn.Module``s and functions).

* :class:`FrameFaceEncoder`: a 2-D CNN backbone (e.g. :class:`~.cnn.SmallCNN`) on every frame of a
  window, then a temporal convolution.
* :class:`HogFaceEncoder`: HOG features of every frame (:func:`mouseemo.ops.hog`, no gradients), an
  MLP, then a temporal convolution.
* :class:`NeuralEncoder`: one input layer per recording session (sessions have different neurons),
  then a shared temporal convolution, so every session lands in one embedding space.
* :class:`SessionReadout`: per-session output layers (the predictive head face -> neural activity).
* :func:`info_nce`: symmetric InfoNCE between paired embeddings, leaving out negatives close in time.

Every encoder maps a window to per-time features ``(B, T, H)``; :func:`pool_project` turns them into
one unit-norm embedding per window.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from mouseemo.errors import ConfigError
from mouseemo.ops import hog, hog_output_size
from mouseemo.ops.frames import standardize_frames


def temporal_block(channels: int, kernel_size: int, layers: int, dropout: float) -> nn.Sequential:
    """Residual-free stack of same-length 1-D convolutions over time (``(B, C, T)``)."""
    mods: list[nn.Module] = []
    for _ in range(layers):
        mods += [
            nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2),
            nn.GELU(),
            nn.Dropout(dropout),
        ]
    return nn.Sequential(*mods)


class _Temporal(nn.Module):
    """Per-time features ``(B, T, C)`` -> temporal convolutions -> ``(B, T, C)`` (with a skip)."""

    def __init__(self, channels: int, kernel_size: int, layers: int, dropout: float) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ConfigError(f"temporal kernel_size must be odd; got {kernel_size}")
        self.conv = temporal_block(channels, kernel_size, layers, dropout)
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.conv(x.transpose(1, 2)).transpose(1, 2))


class FrameFaceEncoder(nn.Module):
    """A 2-D CNN on every frame of a window, then a temporal convolution.

    Args:
        backbone: maps ``(N, 1, H, W)`` frames to ``(N, C)`` with ``embed(x)`` (as
            :class:`~.cnn.SmallCNN` does) or ``forward(x)``; a classifier ``head`` it has is unused
            and removed.
        backbone_dim: ``C``.
        hidden: width of the temporal features.
        kernel_size, layers, dropout: the temporal convolution.

    Shape:
        frames ``(B, T, 1, H, W)`` uint8 or float -> ``(B, T, hidden)``.

    Example:
        >>> from mouseemo.models.components.cnn import SmallCNN
        >>> enc = FrameFaceEncoder(SmallCNN(widths=(8, 16)), backbone_dim=16, hidden=32)
        >>> enc(torch.zeros(2, 5, 1, 24, 32, dtype=torch.uint8)).shape
        torch.Size([2, 5, 32])
    """

    def __init__(
        self,
        backbone: nn.Module,
        backbone_dim: int,
        hidden: int = 128,
        kernel_size: int = 3,
        layers: int = 2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if hasattr(backbone, "embed") and isinstance(getattr(backbone, "head", None), nn.Module):
            backbone.head = nn.Identity()
        self.backbone = backbone
        self.proj = nn.Linear(backbone_dim, hidden)
        self.temporal = _Temporal(hidden, kernel_size, layers, dropout)
        self.hidden = hidden

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.ndim != 5:
            raise ValueError(f"frames must be (B, T, 1, H, W); got {tuple(frames.shape)}")
        b, t = frames.shape[:2]
        x = standardize_frames(frames.flatten(0, 1))
        feats = self.backbone.embed(x) if hasattr(self.backbone, "embed") else self.backbone(x)
        return self.temporal(self.proj(feats.reshape(b, t, -1)))


class HogFaceEncoder(nn.Module):
    """HOG of every frame (fixed features, the paper's), an MLP, then a temporal convolution.

    Args:
        image_size: ``(H, W)`` of the frames (sets the HOG length).
        hog: HOG parameters (scikit-image names).
        hidden: width of the features.
        kernel_size, layers, dropout: the temporal convolution.

    Shape:
        frames ``(B, T, 1, H, W)`` uint8 (the fast exact path) or float -> ``(B, T, hidden)``.
    """

    def __init__(
        self,
        image_size: Sequence[int],
        hog: Mapping | None = None,
        hidden: int = 128,
        kernel_size: int = 3,
        layers: int = 2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()

        self.hog_kwargs = {
            "orientations": 8,
            "pixels_per_cell": (8, 8),
            "cells_per_block": (1, 1),
            "block_norm": "L2-Hys",
            "transform_sqrt": True,
            **{k: (tuple(v) if isinstance(v, list) else v) for k, v in dict(hog or {}).items()},
        }
        h, w = (int(v) for v in image_size)
        self.feature_dim = hog_output_size(
            h, w, self.hog_kwargs["orientations"], self.hog_kwargs["pixels_per_cell"],
            self.hog_kwargs["cells_per_block"],
        )  # fmt: skip
        if self.feature_dim == 0:
            raise ConfigError(f"{h}x{w} frames hold no HOG block with {self.hog_kwargs}")
        self.mlp = nn.Sequential(
            nn.LayerNorm(self.feature_dim),
            nn.Linear(self.feature_dim, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
        )
        self.temporal = _Temporal(hidden, kernel_size, layers, dropout)
        self.hidden = hidden

    def features(self, frames: torch.Tensor) -> torch.Tensor:
        """HOG ``(B, T, D)`` of ``(B, T, 1, H, W)`` frames (no gradients)."""

        b, t = frames.shape[:2]
        with torch.no_grad():
            x = frames.flatten(0, 2)  # (B*T, H, W)
            return hog(x, **self.hog_kwargs, chunk_size=64).float().reshape(b, t, -1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.ndim != 5:
            raise ValueError(f"frames must be (B, T, 1, H, W); got {tuple(frames.shape)}")
        return self.temporal(self.mlp(self.features(frames)))


def layer_key(name: str) -> str:
    """A ``ModuleDict`` key for a session name (``m01/s01`` -> ``m01__s01``)."""
    return re.sub(r"[^0-9A-Za-z_]", "_", name.replace("/", "__")) or "_"


class SessionLayers(nn.Module):
    """One linear layer per session: ``Linear(N_s, out)`` in, or ``Linear(in, N_s)`` out.

    Sessions are added by name with their neuron count; inputs of a batch that mixes sessions are
    zero-padded to the widest session, and each row uses the first ``N_s`` columns of its session.

    Args:
        features: the shared side's width.
        direction: ``"in"`` (neurons -> features) or ``"out"`` (features -> neurons).
    """

    def __init__(self, features: int, direction: str = "in") -> None:
        super().__init__()
        if direction not in ("in", "out"):
            raise ConfigError(f"direction must be 'in' or 'out'; got {direction!r}")
        self.features = features
        self.direction = direction
        self.layers = nn.ModuleDict()
        self.names: dict[str, str] = {}  # key -> session name

    def add(self, name: str, num_neurons: int) -> None:
        key = layer_key(name)
        if key in self.layers:
            have = self.num_neurons(name)
            if have != num_neurons:
                raise ConfigError(f"session {name}: layer for {have} neurons exists, got {num_neurons}")
            return
        if num_neurons < 1:
            raise ConfigError(f"session {name} has no neurons")
        shape = (num_neurons, self.features) if self.direction == "in" else (self.features, num_neurons)
        self.layers[key] = nn.Linear(*shape)
        self.names[key] = name

    def has(self, name: str) -> bool:
        return layer_key(name) in self.layers

    def num_neurons(self, name: str) -> int:
        layer = self.layers[layer_key(name)]
        return layer.in_features if self.direction == "in" else layer.out_features

    def sessions(self) -> dict[str, int]:
        """``{session name: neurons}`` of every layer."""
        return {self.names[k]: self.num_neurons(self.names[k]) for k in self.layers}

    def forward(self, x: torch.Tensor, names: Sequence[str], width: int | None = None) -> torch.Tensor:
        """Apply each row's session layer.

        Args:
            x: the batch.
            names: each row's session.
            width: ``out`` only: output width (default: the widest session in the batch).

        Shape:
            ``in``: ``(B, T, N_max)`` -> ``(B, T, features)``; ``out``: ``(B, T, features)`` ->
            ``(B, T, width)`` (zero beyond each session's neurons).
        """
        if len(names) != x.shape[0]:
            raise ValueError(f"{len(names)} session names for a batch of {x.shape[0]}")
        groups: dict[str, list[int]] = {}
        for i, n in enumerate(names):
            groups.setdefault(n, []).append(i)
        for name in groups:
            if layer_key(name) not in self.layers:
                raise ConfigError(
                    f"no neural layer for session {name}; the model knows {sorted(self.sessions())}"
                )
        if self.direction == "in":
            width = self.features
        else:
            width = width or max(self.num_neurons(n) for n in groups)
        out = x.new_zeros(*x.shape[:-1], width)
        for name, rows in groups.items():
            key = layer_key(name)
            idx = torch.as_tensor(rows, device=x.device)
            layer = self.layers[key]
            if self.direction == "in":
                n = layer.in_features
                if x.shape[-1] < n:
                    raise ConfigError(
                        f"session {name}: the model's layer takes {n} neurons, the batch has {x.shape[-1]}"
                    )
                out[idx] = layer(x[idx][..., :n])
            else:
                out[idx, ..., : layer.out_features] = layer(x[idx])
        return out


class NeuralEncoder(nn.Module):
    """Per-session input layers, then a shared temporal convolution over population activity.

    Args:
        hidden: width of the features.
        kernel_size, layers, dropout: the temporal convolution.
        neuron_dropout: drop whole neurons during training (robustness to which cells were found).

    Shape:
        neural ``(B, T, N_max)`` with ``sessions`` (B names) -> ``(B, T, hidden)``.
    """

    def __init__(
        self,
        hidden: int = 128,
        kernel_size: int = 3,
        layers: int = 2,
        dropout: float = 0.1,
        neuron_dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.inputs = SessionLayers(hidden, "in")
        self.neuron_dropout = nn.Dropout1d(neuron_dropout) if neuron_dropout > 0 else nn.Identity()
        self.act = nn.GELU()
        self.temporal = _Temporal(hidden, kernel_size, layers, dropout)
        self.hidden = hidden

    def add_session(self, name: str, num_neurons: int) -> None:
        self.inputs.add(name, num_neurons)

    def forward(self, neural: torch.Tensor, sessions: Sequence[str]) -> torch.Tensor:
        if neural.ndim != 3:
            raise ValueError(f"neural must be (B, T, N); got {tuple(neural.shape)}")
        x = self.neuron_dropout(neural.transpose(1, 2)).transpose(1, 2)  # drops neurons, not times
        return self.temporal(self.act(self.inputs(x, sessions)))


class SessionReadout(nn.Module):
    """Predict each session's neural activity from per-time features (a linear layer per session).

    Shape:
        features ``(B, T, H)`` with ``sessions`` -> ``(B, T, N_max)``.
    """

    def __init__(self, hidden: int = 128) -> None:
        super().__init__()
        self.outputs = SessionLayers(hidden, "out")

    def add_session(self, name: str, num_neurons: int) -> None:
        self.outputs.add(name, num_neurons)

    def forward(
        self, features: torch.Tensor, sessions: Sequence[str], width: int | None = None
    ) -> torch.Tensor:
        return self.outputs(features, sessions, width)


def pool_project(features: torch.Tensor, head: nn.Module) -> torch.Tensor:
    """Mean over time, a projection head, unit norm.

    Shape:
        ``(B, T, H)`` -> ``(B, D)``.
    """
    return F.normalize(head(features.mean(dim=1)), dim=-1)


def info_nce(
    face: torch.Tensor,
    neural: torch.Tensor,
    logit_scale: torch.Tensor,
    times: torch.Tensor | None = None,
    groups: Sequence[str] | None = None,
    exclude_s: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric InfoNCE of paired unit-norm embeddings (CLIP's loss), optionally without negatives
    that lie within ``exclude_s`` seconds of the positive in the same recording (they are not wrong
    matches, only near-duplicates).

    Args:
        face, neural: ``(B, D)`` unit-norm embeddings; row ``i`` of each is a pair.
        logit_scale: scalar, ``exp`` of the learnable log inverse temperature.
        times: ``(B,)`` window times; with ``groups`` (recording of each row) and ``exclude_s`` they
            define the negatives left out.
        exclude_s: seconds.

    Returns:
        ``(loss, accuracy of picking the true partner among the kept candidates)``.

    Shape:
        face, neural ``(B, D)`` -> scalars.
    """
    logits = logit_scale * face @ neural.T
    if times is not None and exclude_s > 0:
        same = torch.ones_like(logits, dtype=torch.bool)
        if groups is not None:
            codes = {g: i for i, g in enumerate(dict.fromkeys(groups))}
            gid = torch.as_tensor([codes[g] for g in groups], device=logits.device)
            same = gid[:, None] == gid[None, :]
        t = times.to(logits.dtype)
        near = same & ((t[:, None] - t[None, :]).abs() < exclude_s)
        near.fill_diagonal_(False)
        logits = logits.masked_fill(near, float("-inf"))
    target = torch.arange(len(face), device=face.device)
    loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    acc = 0.5 * ((logits.argmax(1) == target).float().mean() + (logits.argmax(0) == target).float().mean())
    return loss, acc
