"""torchvision backbones adapted to one-channel face frames (plain ``nn.Module``s).

No weights are downloaded: models start from random weights (``weights=None``) unless a local file
of pretrained weights is given (for example torchvision's ImageNet ``.pth`` copied to the server).
Pretrained RGB first convolutions are adapted to gray input by summing their kernels over the colour
channels, which gives the same response to a gray image as the RGB network gave to that image
repeated in R, G and B; with more input channels (a session reference, motion) every channel gets
that gray kernel divided by the channel count.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn

from mouseemo.errors import ConfigError, DataError

log = logging.getLogger(__name__)

#: Supported architectures: (path of the first convolution, path of the final linear layer).
ARCHITECTURES: dict[str, tuple[str, str]] = {
    "resnet18": ("conv1", "fc"),
    "resnet34": ("conv1", "fc"),
    "resnet50": ("conv1", "fc"),
    "efficientnet_b0": ("features.0.0", "classifier.1"),
    "mobilenet_v3_small": ("features.0.0", "classifier.3"),
    "mobilenet_v3_large": ("features.0.0", "classifier.3"),
}


def _get(module: nn.Module, path: str) -> nn.Module:
    for part in path.split("."):
        module = module[int(part)] if part.isdigit() else getattr(module, part)
    return module


def _set(module: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = _get(module, parent_path) if parent_path else module
    if name.isdigit():
        parent[int(name)] = new
    else:
        setattr(parent, name, new)


def _adapted_conv(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    return nn.Conv2d(
        in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=conv.bias is not None,
    )


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Weights from a ``.pth``/``.pt``/``.ckpt`` file: a plain state dict or one under ``state_dict``/``model``.

    Raises:
        DataError: the file is missing, unreadable or holds no tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means an unusable file
        raise DataError(f"cannot read weights file {path}: {err}") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not any(torch.is_tensor(v) for v in obj.values()):
        raise DataError(f"{path} holds no state dict of tensors")
    return {k: v for k, v in obj.items() if torch.is_tensor(v)}


class TorchvisionBackbone(nn.Module):
    """A torchvision classification network for ``in_channels``-channel frames and ``num_classes`` logits.

    Args:
        arch: one of :data:`ARCHITECTURES` (``resnet18``, ``resnet34``, ``efficientnet_b0``,
            ``mobilenet_v3_small``, ...).
        in_channels: channels of the input (1 for gray frames, 2 with a session reference).
        num_classes: output logits.
        weights_path: optional local file of weights for ``arch`` (torchvision's ImageNet weights, or
            an earlier run's). An RGB first convolution is summed over its colour channels; a final
            layer with another number of classes is left at its random start. Anything else that does
            not fit is an error.
        dropout: dropout before the final linear layer (torchvision's own for EfficientNet and
            MobileNet, an added one for ResNets).

    Shape:
        x ``(B, C, H, W)`` float -> logits ``(B, K)``; ``embed(x)`` -> ``(B, embed_dim)``.

    Example:
        >>> net = TorchvisionBackbone("resnet18", num_classes=7)
        >>> net(torch.zeros(2, 1, 72, 96)).shape
        torch.Size([2, 7])
    """

    def __init__(
        self,
        arch: str = "resnet18",
        in_channels: int = 1,
        num_classes: int = 7,
        weights_path: str | None = None,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        import torchvision

        if arch not in ARCHITECTURES:
            raise ConfigError(f"unknown backbone {arch!r}; choose one of {sorted(ARCHITECTURES)}")
        first_path, last_path = ARCHITECTURES[arch]
        kwargs = {} if arch.startswith("resnet") else {"dropout": float(dropout)}
        body = torchvision.models.get_model(arch, weights=None, **kwargs)
        first = _get(body, first_path)
        if in_channels != first.in_channels:
            _set(body, first_path, _adapted_conv(first, in_channels))
        last = _get(body, last_path)
        _set(body, last_path, nn.Linear(last.in_features, num_classes))
        self.arch = arch
        self.first_path, self.last_path = first_path, last_path
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.embed_dim = last.in_features
        if weights_path:
            self._load_weights(body, weights_path)
        self.head = _get(body, last_path)
        _set(body, last_path, nn.Identity())
        self.body = body
        self.dropout = nn.Dropout(dropout) if arch.startswith("resnet") else nn.Identity()

    def _load_weights(self, body: nn.Module, path: str | os.PathLike) -> None:
        state = read_state_dict(path)
        # weights saved from this wrapper (body./head. prefixes) load as well as torchvision's own
        if any(k.startswith("body.") for k in state):
            state = {
                (k[5:] if k.startswith("body.") else f"{self.last_path}.{k[5:]}"): v
                for k, v in state.items()
                if k.startswith(("body.", "head."))
            }
        own = body.state_dict()
        first_w = f"{self.first_path}.weight"
        if first_w in state and state[first_w].ndim == 4 and first_w in own:
            w = state[first_w]
            if w.shape[1] != self.in_channels:
                if self.in_channels == 1:
                    state[first_w] = w.sum(dim=1, keepdim=True)
                elif (
                    w.shape[1] == 3
                ):  # each channel (frame, its change from the reference, motion) starts gray
                    state[first_w] = (
                        w.sum(dim=1, keepdim=True).repeat(1, self.in_channels, 1, 1) / self.in_channels
                    )
                else:
                    raise DataError(
                        f"{path}: first convolution takes {w.shape[1]} channels, the model {self.in_channels}"
                    )
        skipped = []
        for key in (f"{self.last_path}.weight", f"{self.last_path}.bias"):
            if key in state and key in own and state[key].shape != own[key].shape:
                skipped.append(key)
                del state[key]
        bad = [k for k, v in state.items() if k in own and v.shape != own[k].shape]
        unexpected = [k for k in state if k not in own]
        # old torchvision files predate BatchNorm's step counter
        missing = [
            k for k in own if k not in state and k not in skipped and not k.endswith("num_batches_tracked")
        ]
        if bad or unexpected or missing:
            raise DataError(
                f"{path} does not hold {self.arch} weights: {len(missing)} missing, {len(unexpected)} "
                f"unexpected and {len(bad)} mis-shaped tensors, e.g. {(missing + unexpected + bad)[:3]}"
            )
        body.load_state_dict(state, strict=False)
        log.info(
            "loaded %s weights from %s%s",
            self.arch,
            path,
            f" (final layer re-initialised for {self.num_classes} classes)" if skipped else "",
        )

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.embed(x)))
