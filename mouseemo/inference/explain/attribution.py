"""Grad-CAM and integrated gradients of classifier checkpoints, from captum (``pip install
"mouseemo[explain]"``); see :mod:`mouseemo.inference.explain`. Imported only where a classifier is
explained: HOG prototype maps and ``predict --overlay-map`` of prototype models never load it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mouseemo.errors import ConfigError
from mouseemo.inference.explain.gradcam import check_classifier, gradcam_layer, network_input

#: Map kinds :func:`attribution_maps` computes for classifier checkpoints.
CHECKPOINT_METHODS = ("gradcam", "ig")

INSTALL_HINT = 'pip install "mouseemo[explain]"'


def require_captum():
    """``captum.attr``, or a one-line :class:`ConfigError` saying how to install it."""
    try:
        import captum.attr as attr
    except ImportError:
        raise ConfigError(
            f"Grad-CAM and integrated gradients need captum, which is not installed: {INSTALL_HINT}"
        ) from None
    return attr


def attribution_maps(
    module,
    frames: torch.Tensor,
    method: str = "gradcam",
    reference: torch.Tensor | None = None,
    ig_steps: int = 32,
    targets: Sequence[int] | None = None,
    per_frame: bool = False,
) -> np.ndarray:
    """Grad-CAM or integrated-gradients maps ``(B, K, H, W)`` float32 at the input's resolution.

    Args:
        module: a classifier module (eval mode).
        frames: uint8 ``(B, H, W)`` frames as the model sees them (cropped and resized).
        method: ``"gradcam"`` (ReLU of the class-weighted activations of :func:`gradcam_layer`,
            upsampled bilinearly) or ``"ig"`` (integrated gradients, summed over input channels).
        reference: uint8 ``(1, 1, H, W)`` session reference for two-channel models.
        ig_steps: integration steps of integrated gradients.
        targets: class indices to explain (default: all).
        per_frame: ``targets`` holds one class per frame; the result is ``(B, 1, H, W)``, each
            frame's map of its own class (one backward pass for the batch).
    """
    if method not in CHECKPOINT_METHODS:
        raise ConfigError(
            f"`method` must be one of {list(CHECKPOINT_METHODS)} for a checkpoint; got {method!r}"
        )
    attr = require_captum()
    check_classifier(module)
    net = module.net
    x = network_input(module, frames, reference)
    targets = list(range(len(module.classes))) if targets is None else [int(t) for t in targets]
    jobs = [torch.as_tensor(targets, device=x.device)] if per_frame else targets
    out = np.zeros((len(x), len(jobs), *x.shape[-2:]), dtype=np.float32)
    with torch.enable_grad():
        if method == "gradcam":
            explainer = attr.LayerGradCam(net, gradcam_layer(net))
        else:
            explainer = attr.IntegratedGradients(net)
        for j, k in enumerate(jobs):
            k = k if per_frame else int(k)
            if method == "gradcam":
                a = explainer.attribute(x, target=k, relu_attributions=True)
                a = attr.LayerAttribution.interpolate(a, tuple(x.shape[-2:]), interpolate_mode="bilinear")
            else:
                a = explainer.attribute(
                    x.clone().requires_grad_(True),
                    baselines=torch.zeros_like(x),
                    target=k,
                    n_steps=ig_steps,
                    internal_batch_size=len(x),  # one batch of frames per pass, whatever ig_steps
                )
            out[:, j] = a.detach().sum(dim=1).float().cpu().numpy()
    return out
