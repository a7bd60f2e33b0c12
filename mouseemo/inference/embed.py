"""A session's face and neural embeddings from a trained joint encoder (``mouseemo embed``).

For every imaging frame whose camera window (the ``window`` frames ending at the camera frame it is
paired with, after the checkpoint's ``lag_s``) is complete and free of dropped frames,
:func:`embed_session` gives ``t``, ``neural`` and ``face`` embeddings (unit norm), ``label``,
``classes``, ``imaging_frame`` and ``camera_frame``, plus ``session``, ``layer``, ``window`` and
``lag_s`` (see ``mouseemo embed --help``). The session's neurons go through the checkpoint's input
layer for that session, or for ``session_layer`` (the same neurons imaged again).
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from mouseemo.data.face_datamodule import SessionFrames, session_labels
from mouseemo.data.imaging import DFF_WINDOW_S
from mouseemo.data.neural_datamodule import activity_on_camera_clock, full_windows, zscore_activity
from mouseemo.data.session import Session, resolve_crop, session_times
from mouseemo.data.sync import nearest_indices, read_timestamps
from mouseemo.data.video import FrameCache
from mouseemo.errors import ConfigError, DataError
from mouseemo.models.checkpoint import load_model


def embed_session(
    folder: str | Path,
    ckpt: str | Path,
    session_layer: str | None = None,
    batch_size: int = 128,
    cache_dir: str | Path | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, np.ndarray]:
    """Per-imaging-frame embeddings of one session (the arrays written by ``mouseemo embed``)."""

    device = torch.device(device)
    module = joint_module(ckpt, device)
    session = Session.open(folder)
    name = session.name
    layer = session_layer or name
    known = module.sessions
    if layer not in known:
        hint = (
            ""
            if session_layer
            else "; fit one from this session's paired data with `fit_session_layer`, or give "
            "`session_layer` to use the layer of the same neurons"
        )
        raise ConfigError(f"{ckpt} has no neural layer for session {layer} (it has {sorted(known)}){hint}")
    p = paired_session(session, module, cache_dir)
    num = p["neural_raw"].shape[1]
    if num != known[layer]:
        raise ConfigError(
            f"{session.path} has {num} neurons but the checkpoint's layer for {layer} takes {known[layer]}: "
            "a different field of view needs its own session layer (`fit_session_layer`)"
        )
    neural = p["neural_raw"]
    if p["rec"].get("zscore", True):
        stats = module.session_stats.get(layer) if layer == name else None
        mean, std = (stats["mean"], stats["std"]) if stats else (None, None)
        neural, _, _ = zscore_activity(neural, p["valid"], mean=mean, std=std)
    window, lag_s, labels, ends, keep, t_img, cache = (
        p[k] for k in ("window", "lag_s", "labels", "ends", "keep", "t_img", "cache")
    )
    rec = p["rec"]
    frames = np.load(cache.path, mmap_mode="r")
    face_out, neural_out = [], []
    with torch.no_grad():
        for a in range(0, len(ends), batch_size):
            e = ends[a : a + batch_size]
            idx = e[:, None] + np.arange(-window + 1, 1)[None]
            f = torch.from_numpy(
                np.asarray(frames[idx.ravel()]).reshape(len(e), window, 1, *frames.shape[1:])
            )
            x = torch.from_numpy(neural[idx])
            face_out.append(module.embed_face(f.to(device)).float().cpu().numpy())
            neural_out.append(module.embed_neural(x.to(device), [layer] * len(e)).float().cpu().numpy())
    classes = list(rec.get("classes") or module.classes)
    return {
        "t": t_img[keep].astype(np.float64),
        "neural": np.concatenate(neural_out).astype(np.float32),
        "face": np.concatenate(face_out).astype(np.float32),
        "label": labels[ends].astype(np.int64),
        "classes": np.array(classes),
        "imaging_frame": keep.astype(np.int64),
        "camera_frame": ends.astype(np.int64),
        "session": np.array(name),
        "layer": np.array(layer),
        "window": np.array(window),
        "lag_s": np.array(lag_s),
    }


def joint_module(ckpt: str | Path, device: torch.device | str = "cpu"):
    """The joint encoder of checkpoint ``ckpt`` (eval mode)."""
    module = load_model(ckpt, device=torch.device(device)).module
    if not getattr(module, "is_joint_encoder", False):
        raise ConfigError(f"{ckpt} is not a joint face-neural encoder (train one with experiment=joint)")
    if not (module.data_record or {}).get("window"):
        raise DataError(f"{ckpt}: no data settings recorded with the joint encoder")
    return module


def paired_session(session: Session, module, cache_dir: str | Path | None = None) -> dict:
    """A session's face frames and (not z-scored) activity on the camera clock, with the settings
    recorded in ``module``, and every imaging frame whose camera window is complete.

    Returns a dict: ``rec`` (data settings), ``window``, ``lag_s``, ``cache`` (the frame cache),
    ``times``, ``labels``, ``neural_raw`` ``(T_cam, N)``, ``valid``, ``t_img``, ``keep`` (imaging
    frames kept) and ``ends`` (their windows' last camera frames).
    """
    rec = dict(module.data_record or {})
    window = int(rec["window"])
    lag_s = float(rec.get("lag_s") or 0.0)
    size = tuple(int(v) for v in rec["image_size"]) if rec.get("image_size") else None
    crop = resolve_crop(None, rec.get("crop"), session.meta, model="the checkpoint", source=str(session.path))
    cache_dir = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "mouseemo-cache"
    cache = FrameCache.get_or_build(session.video, cache_dir, crop, size)
    times = session_times(session, len(cache))
    labels = session_labels(session, times, rec.get("label_source") or "auto", rec.get("outside") or "ignore")
    sf = SessionFrames(session, cache.path, labels, times)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(fs|baseline F0).*")
        act = activity_on_camera_clock(
            sf,
            rec.get("signal") or "dff",
            lag_s,
            rec.get("imaging_fs"),
            float(rec.get("min_overlap_s") or 10.0),
            float(rec.get("dff_window_s") or DFF_WINDOW_S),
        )
    # complete windows ending at each camera frame
    full = np.zeros(len(act.valid), bool)
    full[window - 1 :] = full_windows(act.valid, times, window)
    t_img = read_timestamps(session.imaging_timestamps)
    fps = 1.0 / float(np.median(np.diff(times)))
    cam = nearest_indices(t_img + lag_s, times, max_dist=0.75 / fps)
    keep = np.flatnonzero((cam >= 0) & full[np.maximum(cam, 0)])
    if len(keep) == 0:
        raise DataError(f"{session.path}: no imaging frame has a complete {window}-frame camera window")
    return {"rec": rec, "window": window, "lag_s": lag_s, "cache": cache, "times": times, "labels": labels,
            "neural_raw": act.neural, "valid": act.valid, "t_img": t_img, "keep": keep, "ends": cam[keep]}  # fmt: skip


__all__ = ["embed_session", "joint_module", "paired_session"]
