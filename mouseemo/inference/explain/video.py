"""Maps of frames of a video, for HOG prototype models and classifier checkpoints."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mouseemo.errors import ConfigError, DataError
from mouseemo.inference.explain.frames import frames_in, parse_frame_ranges
from mouseemo.inference.explain.maps import (
    PROTOTYPE_METHODS,
    hog_prototypes_of,
    prototype_maps,
    resize_maps,
    scorer_contributions,
)


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


def explain_frames(scorer, prepared: np.ndarray, method: str | None, out_size, reference=None, ig_steps=32):
    """Maps and scores of prepared uint8 ``(b, h, w)`` frames (the model's input size):
    ``(maps (b, K, H, W), scores (b, K), method)`` with maps resized to ``out_size``."""
    x = torch.from_numpy(np.ascontiguousarray(prepared)).to(scorer.device)
    protos = hog_prototypes_of(scorer)
    if protos is not None:
        if method not in (None, *PROTOTYPE_METHODS):
            raise ConfigError(
                f"`method` {method} explains classifier checkpoints; HOG prototype models give "
                "per-cell similarity contributions (leave `method` out)"
            )
        maps, scores = scorer_contributions(scorer, protos, x, out_size)
        return maps, scores, "contrib"
    from mouseemo.inference.explain.attribution import attribution_maps

    method = method or "gradcam"
    maps = attribution_maps(scorer.module, x, method, reference, ig_steps=ig_steps)
    with torch.no_grad():
        scores = scorer.stream()(x).float().cpu().numpy()
    return resize_maps(maps, out_size, nearest=False), scores, method


#: Frames explained per step: the working memory of the maps does not grow with ``--frames``.
CHUNK = 16


def explain_video(
    video,
    scorer,
    frames: str | Sequence[int] | np.ndarray,
    method: str | None = None,
    crop=None,
    ig_steps: int = 32,
    meta: dict | None = None,
) -> Explanation:
    """Maps of ``frames`` of ``video`` for the model behind ``scorer`` (:func:`load_scorer`).

    ``frames`` is a list such as ``"10,20,100-120"`` (:func:`parse_frame_ranges`) or the indices.
    The frames are cropped by :func:`mouseemo.data.session.resolve_crop`: ``crop``, else the crop of
    ``meta`` (the ``session.json`` of the session the video belongs to), else the model's.

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
    crop = resolve_crop(crop, scorer.crop, meta, model=str(scorer.path), source=str(video))
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
