"""Each frame's map of its own label, for ``predict --overlay-map``: HOG prototype contributions or
Grad-CAM in plain torch; it never loads captum (:mod:`mouseemo.inference.explain.attribution`)."""

from __future__ import annotations

import numpy as np
import torch

from mouseemo.inference.explain.gradcam import gradcam_maps
from mouseemo.inference.explain.maps import hog_prototypes_of, resize_maps, scorer_contributions


def label_maps(scorer, prepared: np.ndarray, labels: np.ndarray, out_size, reference=None) -> np.ndarray:
    """Each frame's map of its own label ``(b, H, W)`` float32, for ``predict --overlay-map``.

    HOG prototype models: the label's per-cell similarity contributions (one HOG of the chunk and a
    product per feature: nearly free). Classifiers: Grad-CAM of the label (one forward and backward
    pass of the network per chunk, a few times the cost of scoring it).
    """
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return np.zeros((0, *out_size), np.float32)
    x = torch.from_numpy(np.ascontiguousarray(prepared)).to(scorer.device)
    protos = hog_prototypes_of(scorer)
    if protos is not None:
        maps, _ = scorer_contributions(scorer, protos, x, out_size)
        return maps[np.arange(len(labels)), labels]
    maps = gradcam_maps(scorer.module, x, labels, reference)
    return resize_maps(maps, out_size, nearest=False)
