"""Grad-CAM of classifier checkpoints in plain torch (no captum): each frame's map of one class, for
``predict --overlay-map``; the network's last convolutional block and its input, shared with
:mod:`mouseemo.inference.explain.attribution`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mouseemo.errors import ConfigError


def gradcam_layer(net: nn.Module) -> nn.Module:
    """The last convolutional block of ``net``: the module that holds its last ``Conv2d`` (a conv +
    norm + ReLU block, a residual block), or that conv itself when it sits directly in ``net``."""
    parent_of: dict[int, nn.Module] = {}
    last = None
    for module in net.modules():
        for child in module.children():
            parent_of[id(child)] = module
        if isinstance(module, nn.Conv2d):
            last = module
    if last is None:
        raise ConfigError(f"Grad-CAM needs a convolutional network; {type(net).__name__} has no Conv2d")
    parent = parent_of.get(id(last))
    return last if parent is None or parent is net else parent


def check_classifier(module) -> None:
    from mouseemo.models.classifier_module import ClassifierLitModule

    if not isinstance(module, ClassifierLitModule):
        raise ConfigError(
            f"Grad-CAM and integrated gradients explain classifier checkpoints; this one holds "
            f"{type(module).__name__}"
        )
    if module.clip_length > 1:
        raise ConfigError("explanation maps of clip (temporal) models are not supported; use a frame model")


def network_input(module, frames: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 ``(B, H, W)`` frames -> the float ``(B, C, H, W)`` input the module's network sees."""
    batch = {"image": frames[:, None]}
    if getattr(module, "reference", None) is not None:
        if reference is None:
            reference = torch.full((1, 1, *frames.shape[-2:]), 128, dtype=torch.uint8, device=frames.device)
        batch["reference"] = reference.expand(len(frames), -1, -1, -1)
    with torch.no_grad():
        return module.prepare_batch(batch, augment=False)["image"].float()


def gradcam_maps(
    module, frames: torch.Tensor, targets: Sequence[int], reference: torch.Tensor | None = None
) -> np.ndarray:
    """Grad-CAM ``(B, H, W)`` float32 of class ``targets[i]`` of each frame, at the input's resolution.

    The ReLU of :func:`gradcam_layer`'s activations weighted by their spatially averaged gradients,
    summed over channels and upsampled bilinearly: captum's ``LayerGradCam`` with
    ``relu_attributions=True`` and ``LayerAttribution.interpolate`` (one backward pass per batch).
    """
    check_classifier(module)
    net = module.net
    x = network_input(module, frames, reference)
    held: list[torch.Tensor] = []
    handle = gradcam_layer(net).register_forward_hook(lambda _m, _i, out: held.append(out))
    try:
        with torch.enable_grad():
            out = net(x)
            picked = out[
                torch.arange(len(out), device=out.device), torch.as_tensor(targets, device=out.device)
            ]
            (grads,) = torch.autograd.grad(picked.sum(), held[0])
    finally:
        handle.remove()
    acts = held[0].detach()
    cam = F.relu((grads.mean(dim=(2, 3), keepdim=True) * acts).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, tuple(x.shape[-2:]), mode="bilinear")
    return cam[:, 0].float().cpu().numpy()
