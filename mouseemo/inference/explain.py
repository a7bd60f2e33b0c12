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
(:func:`gradcam_layer`) and integrated gradients, both from captum (``pip install "mouseemo[explain]"``).
Attributions are taken with respect to the network's input after the module's own preparation
(standardised frame, and its difference from the session reference for two-channel models); integrated
gradients sum over input channels and start from an all-zero input (a flat mean-gray frame that does
not differ from its reference).

Every map is returned as ``(n_frames, K, H, W)`` float32 at the (cropped) video frame's resolution:
cell maps repeat each cell's value over its pixels (pixels right/below the last whole cell, which HOG
ignores, are 0), then are resized (nearest) when the model saw resized frames.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import nn

from mouseemo.errors import ConfigError, DataError
from mouseemo.models.prototypes_io import Prototypes
from mouseemo.ops import HOGParams

#: Map kinds :func:`explain_frames` computes, per model kind.
PROTOTYPE_METHODS = ("contrib",)
CHECKPOINT_METHODS = ("gradcam", "ig")

INSTALL_HINT = 'pip install "mouseemo[explain]"'


def _params(hog: dict) -> HOGParams:
    return HOGParams.create(**hog)


def fold_cells(values: np.ndarray, hog: dict, frame_size: Sequence[int], reduce: str = "sum") -> np.ndarray:
    """Per-feature values ``(..., D)`` -> per-cell values ``(..., n_cells_r, n_cells_c)``.

    ``reduce="sum"`` sums a cell's features; ``"l2"`` takes the L2 norm over them.
    """
    p = _params(hog)
    ncy, ncx, nby, nbx = p.grid(int(frame_size[0]), int(frame_size[1]))
    (br, bc), n = p.cells_per_block, p.orientations
    values = np.asarray(values, dtype=np.float64)
    lead = values.shape[:-1]
    if values.shape[-1] != nby * nbx * br * bc * n:
        raise DataError(
            f"{values.shape[-1]} features do not fit HOG of a {frame_size[0]}x{frame_size[1]} frame ({hog})"
        )
    v = values.reshape(*lead, nby, nbx, br, bc, n)
    v = v**2 if reduce == "l2" else v
    v = v.sum(axis=-1)
    cells = np.zeros((*lead, ncy, ncx), dtype=np.float64)
    for a in range(br):
        for b in range(bc):
            cells[..., a : a + nby, b : b + nbx] += v[..., :, :, a, b]
    return np.sqrt(cells) if reduce == "l2" else cells


def cells_to_pixels(
    cells: np.ndarray, hog: dict, frame_size: Sequence[int], out_size: Sequence[int] | None = None
) -> np.ndarray:
    """Cell maps ``(..., ncy, ncx)`` -> pixel maps ``(..., H, W)`` float32 (see the module notes)."""
    pr, pc = _params(hog).pixels_per_cell
    h, w = int(frame_size[0]), int(frame_size[1])
    cells = np.asarray(cells, dtype=np.float32)
    up = np.repeat(np.repeat(cells, pr, axis=-2), pc, axis=-1)
    pix = np.zeros((*cells.shape[:-2], h, w), dtype=np.float32)
    pix[..., : up.shape[-2], : up.shape[-1]] = up
    return resize_maps(pix, out_size)


def resize_maps(maps: np.ndarray, out_size: Sequence[int] | None, nearest: bool = True) -> np.ndarray:
    """Resize ``(..., H, W)`` maps to ``out_size`` ``(H, W)`` (no-op when equal or ``None``)."""
    maps = np.asarray(maps, dtype=np.float32)
    if out_size is None or tuple(maps.shape[-2:]) == (int(out_size[0]), int(out_size[1])):
        return maps
    h, w = int(out_size[0]), int(out_size[1])
    flat = maps.reshape(-1, *maps.shape[-2:])
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    out = np.stack([cv2.resize(m, (w, h), interpolation=interp) for m in flat]) if len(flat) else flat
    return out.reshape(*maps.shape[:-2], h, w)


def _neutral_index(names: Sequence[str]) -> int:
    if "neutral" not in names:
        raise ConfigError(f"explanation maps need a 'neutral' prototype; the prototypes are {list(names)}")
    return list(names).index("neutral")


def prototype_cell_maps(protos: Prototypes) -> np.ndarray:
    """``(K, ncy, ncx)``: per prototype, the L2 norm of (prototype - neutral) over each cell's features."""
    m = protos.matrix.astype(np.float64)
    diff = m - m[_neutral_index(protos.names)]
    return fold_cells(diff, protos.hog, protos.frame_size, reduce="l2")


def prototype_maps(protos: Prototypes, out_size: Sequence[int] | None = None) -> np.ndarray:
    """``(K, H, W)`` float32 pixel maps of :func:`prototype_cell_maps` (neutral's row is 0)."""
    return cells_to_pixels(prototype_cell_maps(protos), protos.hog, protos.frame_size, out_size)


def _standardise(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=-1, keepdims=True)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.where(norm > 1e-12, x / np.maximum(norm, 1e-12), 0.0)


def contribution_cells(
    feats: np.ndarray,
    matrix: np.ndarray,
    names: Sequence[str],
    hog: dict,
    frame_size: Sequence[int],
    relative: str | None = "neutral",
) -> np.ndarray:
    """Per-cell contributions ``(B, K, ncy, ncx)`` float64 to Pearson similarities (module notes).

    Each frame's row ``k`` sums over cells to ``r(f, P_k) - r(f, P_neutral)`` for an emotion and to
    ``r(f, P_neutral)`` for neutral (``relative="neutral"``), or to ``r(f, P_k)`` (``relative=None``).
    """
    zf = _standardise(np.asarray(feats, dtype=np.float64).reshape(-1, np.shape(feats)[-1]))
    zp = _standardise(np.asarray(matrix, dtype=np.float64))
    if relative == "neutral":
        n = _neutral_index(names)
        zp = np.where(np.arange(len(zp))[:, None] == n, zp, zp - zp[n])
    elif relative is not None:
        raise ConfigError(f"relative must be 'neutral' or None; got {relative!r}")
    per_feature = zf[:, None, :] * zp[None, :, :]  # (B, K, D)
    return fold_cells(per_feature, hog, frame_size, reduce="sum")


def contribution_maps(
    feats, matrix, names, hog, frame_size, out_size=None, relative: str | None = "neutral"
) -> np.ndarray:
    """``(B, K, H, W)`` float32 pixel maps of :func:`contribution_cells`."""
    cells = contribution_cells(feats, matrix, names, hog, frame_size, relative)
    return cells_to_pixels(cells, hog, frame_size, out_size)


# -- classifiers (captum) ----------------------------------------------------------------------------
def require_captum():
    """``captum.attr``, or a one-line :class:`ConfigError` saying how to install it."""
    try:
        import captum.attr as attr
    except ImportError:
        raise ConfigError(
            f"Grad-CAM and integrated gradients need captum, which is not installed: {INSTALL_HINT}"
        ) from None
    return attr


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


def _check_classifier(module) -> None:
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
            f"--method must be one of {list(CHECKPOINT_METHODS)} for a checkpoint; got {method!r}"
        )
    attr = require_captum()
    _check_classifier(module)
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


# -- videos and files --------------------------------------------------------------------------------
#: Most frames one run explains: every frame's maps, image and figure are held until the files are
#: written, so memory grows with the count.
MAX_FRAMES = 500
#: Most integration steps (captum lists every step's weight; the maps barely change past a few hundred).
MAX_IG_STEPS = 1000
_FRAMES_HINT = "--frames must be frame numbers and ranges such as 10,20,100-120"


def parse_frame_ranges(text: str) -> list[tuple[int, int]]:
    """``"10,20,100-120"`` -> sorted, merged inclusive ranges ``[(10, 10), (20, 20), (100, 120)]``.

    Nothing is expanded, so a range of any length costs the same; :func:`frames_in` checks the
    ranges against a video and lists the frames.

    Raises:
        ConfigError: text that is not frame numbers and ranges, negative numbers, a reversed range.
    """
    ranges: list[tuple[int, int]] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        a_text, sep, b_text = part[1:].partition("-")
        a_text = part[0] + a_text
        try:
            a = int(a_text)
            b = int(b_text) if sep else a
        except ValueError:
            raise ConfigError(f"{_FRAMES_HINT}; got {part!r}") from None
        if a < 0 or b < 0:
            raise ConfigError(f"--frames must be >= 0; got {part!r}")
        if b < a:
            raise ConfigError(f"{_FRAMES_HINT} (a range goes from low to high); got {part!r}")
        ranges.append((a, b))
    if not ranges:
        raise ConfigError(f"--frames names no frame: {text!r}")
    merged: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if merged and a <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def frames_in(ranges: Sequence[tuple[int, int]], num_frames: int | None, video=None) -> np.ndarray:
    """The frames of ``ranges`` (:func:`parse_frame_ranges`) as sorted int64 indices.

    Raises:
        DataError: a frame at or past ``num_frames`` (the message names the video's length).
        ConfigError: more than :data:`MAX_FRAMES` frames.
    """
    if num_frames is not None:
        for a, b in ranges:
            if b >= num_frames:
                where = f"{video}" if video is not None else "the video"
                raise DataError(
                    f"frame {max(a, num_frames)} is outside {where}: it has {num_frames} frames"
                    + (f" (0 to {num_frames - 1})" if num_frames else "")
                )
    count = sum(b - a + 1 for a, b in ranges)
    if count > MAX_FRAMES:
        raise ConfigError(
            f"--frames names {count} frames; explain at most {MAX_FRAMES} in one run (split the list)"
        )
    return np.concatenate([np.arange(a, b + 1, dtype=np.int64) for a, b in ranges])


def parse_frames(text: str) -> np.ndarray:
    """``"10,20,100-120"`` -> sorted unique frame indices (ranges include both ends)."""
    return frames_in(parse_frame_ranges(text), None)


@dataclass
class Explanation:
    """Maps of some frames of one video (or of the prototypes alone: no frames).

    Attributes:
        maps: ``(n_frames, K, H, W)`` float32 at the cropped frame's resolution.
        frames: ``(n_frames,)`` frame indices.
        images: gray uint8 ``(n_frames, H, W)``: the cropped frames.
        names: the ``K`` class / prototype names.
        method: ``contrib`` (prototypes), ``gradcam`` or ``ig``.
        scores: ``(n_frames, K)`` the model's scores of the frames (similarities or probabilities).
        prototype_maps: ``(K, H, W)`` prototype-difference maps (HOG models), else ``None``.
    """

    maps: np.ndarray
    frames: np.ndarray
    images: np.ndarray
    names: list[str]
    method: str
    scores: np.ndarray
    prototype_maps: np.ndarray | None = None


def hog_prototypes_of(scorer) -> Prototypes | None:
    """The prototypes behind a scorer: a prototypes file, or a ``model=hog_proto`` checkpoint."""
    if getattr(scorer, "kind", "") == "prototypes":
        return scorer.protos
    return getattr(getattr(scorer, "module", None), "protos", None)


def explain_frames(scorer, prepared: np.ndarray, method: str | None, out_size, reference=None, ig_steps=32):
    """Maps and scores of prepared uint8 ``(b, h, w)`` frames (the model's input size):
    ``(maps (b, K, H, W), scores (b, K), method)`` with maps resized to ``out_size``."""
    x = torch.from_numpy(np.ascontiguousarray(prepared)).to(scorer.device)
    protos = hog_prototypes_of(scorer)
    if protos is not None:
        if method not in (None, *PROTOTYPE_METHODS):
            raise ConfigError(
                f"--method {method} explains classifier checkpoints; HOG prototype models give "
                "per-cell similarity contributions (leave --method out)"
            )
        from mouseemo.ops import hog

        feats = hog(x, **protos.hog).double().cpu().numpy()
        matrix = scorer.matrix.double().cpu().numpy() if hasattr(scorer, "matrix") else protos.matrix
        cells = contribution_cells(feats, matrix, protos.names, protos.hog, protos.frame_size)
        rel = np.asarray(cells.sum(axis=(-2, -1)))
        n = _neutral_index(protos.names)
        scores = rel.copy()
        scores[:, np.arange(len(protos.names)) != n] += rel[:, n : n + 1]  # r_k = (r_k - r_n) + r_n
        maps = cells_to_pixels(cells, protos.hog, protos.frame_size, out_size)
        return maps, scores.astype(np.float32), "contrib"
    method = method or "gradcam"
    ref = reference
    maps = attribution_maps(scorer.module, x, method, ref, ig_steps=ig_steps)
    with torch.no_grad():
        scores = scorer.stream()(x).float().cpu().numpy()
    return resize_maps(maps, out_size, nearest=False), scores, method


def label_maps(scorer, prepared: np.ndarray, labels: np.ndarray, out_size, reference=None) -> np.ndarray:
    """Each frame's map of its own label ``(b, H, W)`` float32, for ``predict --overlay-map``.

    HOG prototype models: the label's per-cell similarity contributions (one HOG of the chunk and a
    product per feature: nearly free). Classifiers: Grad-CAM of the label (one forward and backward
    pass of the network per chunk, a few times the cost of scoring it).
    """
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return np.zeros((0, *out_size), np.float32)
    if hog_prototypes_of(scorer) is not None:
        maps, _, _ = explain_frames(scorer, prepared, None, out_size)
        return maps[np.arange(len(labels)), labels]
    x = torch.from_numpy(np.ascontiguousarray(prepared)).to(scorer.device)
    maps = attribution_maps(scorer.module, x, "gradcam", reference, targets=labels, per_frame=True)
    return resize_maps(maps[:, 0], out_size, nearest=False)


#: Frames explained per step: the working memory of the maps does not grow with ``--frames``.
CHUNK = 16


def explain_video(
    video,
    scorer,
    frames: str | Sequence[int] | np.ndarray,
    method: str | None = None,
    crop=None,
    ig_steps: int = 32,
) -> Explanation:
    """Maps of ``frames`` of ``video`` for the model behind ``scorer`` (:func:`load_scorer`).

    ``frames`` is a list such as ``"10,20,100-120"`` (:func:`parse_frame_ranges`) or the indices.

    Raises:
        DataError: a missing or undecodable video; frames past its end.
        ConfigError: a crop outside the frame, frames the model cannot take (size, HOG parameters),
            a method that does not fit the model, captum missing, more than :data:`MAX_FRAMES` frames.
    """
    from mouseemo.data.session import resolve_crop
    from mouseemo.data.video import VideoReader

    if not isinstance(frames, str):
        frames = ",".join(str(int(i)) for i in np.unique(np.asarray(frames, dtype=np.int64)))
    ranges = parse_frame_ranges(frames)
    crop = resolve_crop(crop, scorer.crop, None)
    with VideoReader(video, crop=crop) as vr:
        scorer.check(vr.height, vr.width, source=f"{video} (crop {list(crop) if crop else None})")
        hint = vr.frame_count_hint  # the container's word: counted by decoding only when past it
        idx = frames_in(ranges, None if hint and ranges[-1][1] < hint else vr.num_frames, video)
        images = vr.read_frames(idx)
        if len(images) < len(idx):
            raise DataError(
                f"frame {int(idx[len(images)])} is outside {video}: it has {vr.num_frames} frames "
                f"(0 to {vr.num_frames - 1})"
            )
        scorer = scorer.for_video(vr) if getattr(scorer, "reference_kind", None) else scorer
        reference = getattr(scorer, "_reference", None)
        size = (vr.height, vr.width)
    parts = [
        explain_frames(scorer, scorer.prepare(images[i : i + CHUNK]), method, size, reference, ig_steps)
        for i in range(0, len(images), CHUNK)
    ]
    maps = np.concatenate([m for m, _, _ in parts])
    scores = np.concatenate([sc for _, sc, _ in parts])
    method = parts[0][2]
    protos = hog_prototypes_of(scorer)
    pmaps = prototype_maps(protos, size) if protos is not None else None
    return Explanation(maps, idx, images, list(scorer.names), method, scores, pmaps)


def _titles(method: str) -> str:
    return {
        "contrib": "per-cell contribution to similarity (emotion: minus neutral's)",
        "gradcam": "Grad-CAM, last conv block",
        "ig": "integrated gradients",
        "prototype": "prototype - neutral, HOG norm per cell",
    }[method]


def write_explanation(result: Explanation, out_dir, stem: str, overwrite: bool = False) -> list:
    """Write ``<stem>.explain.npz`` and one ``<stem>_frame<N>.png`` per frame (plus
    ``<stem>_prototypes.png`` for HOG models) into ``out_dir``; all are drawn first, then each is
    written under a temporary name and renamed, so a failure leaves no file that looks complete."""
    from pathlib import Path

    from mouseemo.viz.explain import explanation_figure

    out_dir = Path(out_dir)
    files: dict[Path, bytes] = {}
    prefix = "similarity" if result.method == "contrib" else "p"
    scale_rows = None  # neutral's own similarity contributions would set the scale of every panel
    if result.method == "contrib" and "neutral" in result.names and len(result.names) > 1:
        scale_rows = [k for k, n in enumerate(result.names) if n != "neutral"]
    for i, f in enumerate(result.frames):
        subs = [f"({prefix} {s:.3f})" if prefix == "p" else f"({s:.3f})" for s in result.scores[i]]
        png = explanation_figure(
            result.images[i], result.maps[i], result.names,
            f"{stem} frame {int(f)}: {_titles(result.method)}", subs, scale_rows=scale_rows,
        )  # fmt: skip
        files[out_dir / f"{stem}_frame{int(f):06d}.png"] = png
    arrays = {
        "maps": result.maps.astype(np.float32),
        "frames": np.asarray(result.frames, dtype=np.int64),
        "names": np.array(result.names, dtype=np.str_),
        "method": np.array(result.method, dtype=np.str_),
        "scores": np.asarray(result.scores, dtype=np.float32),
        "images": np.asarray(result.images, dtype=np.uint8),
    }
    if result.prototype_maps is not None:
        arrays["prototype_maps"] = result.prototype_maps.astype(np.float32)
        img = result.images[0] if len(result.images) else None
        files[out_dir / f"{stem}_prototypes.png"] = explanation_figure(
            img, result.prototype_maps, result.names, f"{stem}: {_titles('prototype')}"
        )
    return _write_all(files, arrays, out_dir / f"{stem}.explain.npz", overwrite)


def write_prototype_maps(
    protos: Prototypes, out_dir, stem: str = "prototypes", overwrite: bool = False
) -> list:
    """The prototype-difference maps alone (no video; the paper's figure): ``<stem>.explain.npz``
    (``prototype_maps (K, H, W)``, ``names``, ``method="prototype"``, empty ``maps``/``frames``) and
    ``<stem>.png``, at the prototypes' frame size."""
    from pathlib import Path

    from mouseemo.viz.explain import explanation_figure

    out_dir = Path(out_dir)
    pm = prototype_maps(protos)
    k = len(protos.names)
    png = explanation_figure(None, pm, protos.names, f"{stem}: {_titles('prototype')}")
    arrays = {
        "maps": np.zeros((0, k, *pm.shape[-2:]), np.float32),
        "frames": np.zeros(0, np.int64),
        "names": np.array(protos.names, dtype=np.str_),
        "method": np.array("prototype", dtype=np.str_),
        "prototype_maps": pm,
    }
    return _write_all({out_dir / f"{stem}.png": png}, arrays, out_dir / f"{stem}.explain.npz", overwrite)


def _previous_outputs(npz) -> set:
    """The files the run that wrote ``npz`` (``<stem>.explain.npz``) wrote beside it, by its record."""
    from pathlib import Path

    npz = Path(npz)
    stem = npz.name[: -len(".explain.npz")]
    try:
        with np.load(npz, allow_pickle=False) as old:
            frames = [int(f) for f in np.asarray(old["frames"]).ravel()[:MAX_FRAMES]]
            method, has_protos = str(old["method"]), "prototype_maps" in old.files
    except Exception:  # noqa: BLE001 - not a file mouseemo wrote: nothing beside it is known to be ours
        return set()
    names = {npz.parent / f"{stem}_frame{f:06d}.png" for f in frames}
    if method == "prototype":
        names.add(npz.parent / f"{stem}.png")
    elif has_protos:
        names.add(npz.parent / f"{stem}_prototypes.png")
    return names


def _write_all(files: dict, arrays: dict, npz, overwrite: bool) -> list:
    """Write ``files`` (path -> bytes) and ``npz`` to temporary names, then rename them all, ``npz``
    last; an interrupt before the renames leaves nothing. A rerun with ``overwrite`` then removes the
    files the previous run recorded in ``npz`` that this one does not write."""
    from contextlib import ExitStack

    from mouseemo.utils.io import atomic_path, remove_stale_temps

    targets = [npz, *files]
    for p in targets:
        if p.is_dir():
            raise ConfigError(f"{p} is a folder; mouseemo writes a file there")
        if not overwrite and (p.exists() or p.is_symlink()):
            raise ConfigError(f"{p} exists; pass --overwrite to replace it")
    remove_stale_temps(npz.parent)
    stale = _previous_outputs(npz) - set(targets) if overwrite and npz.is_file() else set()
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    files = {**files, npz: buf.getvalue()}
    with ExitStack() as stack:
        # entered npz first, so renamed last: the record names only files that are in place
        for path in reversed(list(files)):
            stack.enter_context(atomic_path(path)).write_bytes(files[path])
    for path in stale:
        if path.is_file() and not path.is_symlink():
            path.unlink()
    return targets


def run_explain(
    video=None,
    prototypes=None,
    ckpt=None,
    frames: str | None = None,
    out_dir=".",
    method: str | None = None,
    crop=None,
    device="cpu",
    overwrite: bool = False,
    ig_steps: int = 32,
) -> list:
    """``mouseemo explain``: maps of ``frames`` of ``video`` written into ``out_dir``, or, with
    prototypes and no video, the prototype-difference maps alone. Returns the files written."""
    from pathlib import Path

    from mouseemo.inference.scorers import load_scorer

    if not 1 <= ig_steps <= MAX_IG_STEPS:
        raise ConfigError(f"--ig-steps must be 1 to {MAX_IG_STEPS}; got {ig_steps}")
    if method is not None and method not in CHECKPOINT_METHODS:
        raise ConfigError(f"--method must be one of {list(CHECKPOINT_METHODS)}; got {method!r}")
    if video is None:
        if prototypes is None or ckpt is not None:
            raise ConfigError("without a VIDEO, give --prototypes (its maps are drawn alone)")
        if frames is not None or crop is not None or method is not None:
            raise ConfigError("--frames, --crop and --method need a VIDEO")
        protos = Prototypes.load(prototypes)
        return write_prototype_maps(protos, out_dir, Path(prototypes).stem, overwrite)
    if frames is None:
        raise ConfigError("give --frames (e.g. 10,20,100-120) to explain frames of a video")
    parse_frame_ranges(frames)  # its errors before the model is loaded
    scorer = load_scorer(prototypes, ckpt, device)
    if hog_prototypes_of(scorer) is None:
        require_captum()  # before any decoding
    result = explain_video(video, scorer, frames, method, crop, ig_steps)
    return write_explanation(result, out_dir, Path(video).stem, overwrite)


__all__ = [
    "CHECKPOINT_METHODS",
    "Explanation",
    "explain_frames",
    "explain_video",
    "frames_in",
    "MAX_FRAMES",
    "MAX_IG_STEPS",
    "parse_frame_ranges",
    "parse_frames",
    "write_explanation",
    "write_prototype_maps",
    "PROTOTYPE_METHODS",
    "attribution_maps",
    "cells_to_pixels",
    "contribution_cells",
    "contribution_maps",
    "fold_cells",
    "gradcam_layer",
    "label_maps",
    "network_input",
    "prototype_cell_maps",
    "prototype_maps",
    "require_captum",
    "resize_maps",
    "run_explain",
]
