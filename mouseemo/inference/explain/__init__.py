"""Explanation maps: which part of the face says which emotion.

**HOG prototype models** (a prototypes file, or a ``model=hog_proto`` checkpoint). A HOG vector of a
frame is laid out as scikit-image's ``(n_blocks_r, n_blocks_c, cells_r, cells_c, orientations)``;
slot ``(a, b)`` of block ``(i, j)`` describes cell ``(i + a, j + b)``, so every feature belongs to
exactly one cell ("folding" blocks back onto cells).

* :func:`prototype_maps`: per prototype ``k``, per cell, the L2 norm of ``P_k - P_neutral`` over the
  cell's features (its orientations, in every block that holds the cell): where, and how strongly,
  the emotion's mean face differs from the neutral face (the paper's HOG glyph images, as a heat map).
* :func:`contribution_maps`: for frames, per prototype, each cell's share of a Pearson similarity.
  With ``z(x) = (x - mean(x)) / ||x - mean(x)||``, Pearson's ``r(f, P_k) = sum_d z(f)_d z(P_k)_d``, so
  ``c_k[cell] = sum_{d in cell} z(f)_d (z(P_k)_d - z(P_neutral)_d)`` sums over cells to
  ``r(f, P_k) - r(f, P_neutral)``: the cells that moved the frame toward emotion ``k`` and away from
  neutral are positive. The neutral row (``relative="neutral"``) holds ``z(f)_d z(P_neutral)_d``
  summed per cell, which sums to ``r(f, P_neutral)`` itself. ``relative=None`` gives
  ``z(f)_d z(P_k)_d`` per cell for every row (sums to ``r(f, P_k)``). Cheap: one product per feature.

**Classifier checkpoints** (:class:`~mouseemo.models.classifier_module.ClassifierLitModule`, frame
models, also with a session-reference channel): Grad-CAM on the last convolutional block
(:func:`gradcam_layer`) and integrated gradients, both from captum (``pip install "mouseemo[explain]"``;
:mod:`~mouseemo.inference.explain.attribution`, loaded on first use). ``predict --overlay-map`` draws
Grad-CAM of each frame's label without captum (:mod:`~mouseemo.inference.explain.gradcam`).
Attributions are taken with respect to the network's input after the module's own preparation
(standardised frame, and its difference from the session reference for two-channel models); integrated
gradients sum over input channels and start from an all-zero input (a flat mean-gray frame that does
not differ from its reference).

Every map is returned as ``(n_frames, K, H, W)`` float32 at the (cropped) video frame's resolution:
cell maps repeat each cell's value over its pixels (pixels right/below the last whole cell, which HOG
ignores, are 0), then are resized (nearest) when the model saw resized frames.
"""

from __future__ import annotations

from mouseemo.inference.explain.files import run_explain, write_explanation, write_prototype_maps
from mouseemo.inference.explain.frames import (
    MAX_FRAMES,
    MAX_IG_STEPS,
    frames_in,
    parse_frame_ranges,
    parse_frames,
)
from mouseemo.inference.explain.maps import (
    PROTOTYPE_METHODS,
    cells_to_pixels,
    contribution_cells,
    contribution_maps,
    hog_prototypes_of,
    prototype_cell_maps,
    prototype_maps,
    resize_maps,
)
from mouseemo.inference.explain.overlay import label_maps
from mouseemo.inference.explain.video import Explanation, explain_frames, explain_video
from mouseemo.ops.cells import fold_cells

#: Names of :mod:`mouseemo.inference.explain.attribution` (captum), imported when first asked for.
_ATTRIBUTION = ("CHECKPOINT_METHODS", "INSTALL_HINT", "attribution_maps", "require_captum")
#: Names of :mod:`mouseemo.inference.explain.gradcam` (torch only), imported when first asked for.
_GRADCAM = ("check_classifier", "gradcam_layer", "gradcam_maps", "network_input")


def __getattr__(name: str):
    if name in _ATTRIBUTION or name in _GRADCAM:
        import importlib

        module = "attribution" if name in _ATTRIBUTION else "gradcam"
        return getattr(importlib.import_module(f"{__name__}.{module}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CHECKPOINT_METHODS",
    "Explanation",
    "MAX_FRAMES",
    "MAX_IG_STEPS",
    "PROTOTYPE_METHODS",
    "attribution_maps",
    "cells_to_pixels",
    "contribution_cells",
    "contribution_maps",
    "explain_frames",
    "explain_video",
    "fold_cells",
    "frames_in",
    "gradcam_layer",
    "gradcam_maps",
    "hog_prototypes_of",
    "label_maps",
    "network_input",
    "parse_frame_ranges",
    "parse_frames",
    "prototype_cell_maps",
    "prototype_maps",
    "require_captum",
    "resize_maps",
    "run_explain",
    "write_explanation",
    "write_prototype_maps",
]
