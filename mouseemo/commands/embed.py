"""``mouseemo embed``: a session's face and neural embeddings from a trained joint encoder.

Example::

    mouseemo embed data/m01/s01 --ckpt logs/train/runs/<time>/checkpoints/last.ckpt --out m01_s01.npz
    mouseemo embed other_day/ --ckpt C.ckpt --out e.npz --session-layer m01/s01   # same field of view

For every imaging frame whose camera window (the ``window`` frames ending at the camera frame it is
paired with, after the checkpoint's ``lag_s``) is complete and free of dropped frames, writes:

=================  =============  ===============================================================
key                shape          what
=================  =============  ===============================================================
``t``              ``(M,)``       imaging-frame time (camera-clock seconds, ``imaging_timestamps.csv``)
``neural``         ``(M, D)``     neural embedding (unit norm)
``face``           ``(M, D)``     face embedding (unit norm)
``label``          ``(M,)``       emotion label index of the paired camera frame (-1: none)
``classes``        ``(K,)``       label names
``imaging_frame``  ``(M,)``       index into the Suite2p frames
``camera_frame``   ``(M,)``       the paired camera frame (the window's last)
=================  =============  ===============================================================

plus ``session``, ``layer``, ``window`` and ``lag_s``. The file loads with ``allow_pickle=False``.
The session's neurons go through the checkpoint's input layer for that session; a session the model
was not trained on needs ``--session-layer`` naming a layer with the same neurons (the same field of
view, imaged again), and the neuron count must match.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from mouseemo.commands._args import check_out_file
from mouseemo.errors import ConfigError, DataError
from mouseemo.utils.device import pick_device
from mouseemo.utils.io import remove_stale_temps, save_npz_atomic


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "embed",
        help="face and neural embeddings of a session from a trained joint encoder (npz per imaging frame)",
        description="Export a session's per-imaging-frame face and neural embeddings (t, neural, face, "
        "label) from a joint face <-> neural encoder checkpoint.",
    )
    p.add_argument("session", metavar="SESSION", help="session folder (face video, suite2p/, timestamps)")
    p.add_argument(
        "--ckpt", required=True, metavar="C.ckpt", help="joint encoder checkpoint (train.py experiment=joint)"
    )
    p.add_argument("--out", required=True, metavar="EMB.npz", help="file to write")
    p.add_argument("--session-layer", default=None, metavar="ANIMAL/SESSION",
                   help="use this session's neural layer (the same neurons imaged in another session)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=128, help="windows per step")
    p.add_argument("--cache-dir", default=None, help="decoded-frame cache (default: the system temp folder)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=run)


def embed_session(
    folder: str | Path,
    ckpt: str | Path,
    session_layer: str | None = None,
    batch_size: int = 128,
    cache_dir: str | Path | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, np.ndarray]:
    """Per-imaging-frame embeddings of one session (the arrays written by ``mouseemo embed``)."""
    from mouseemo.data.face_datamodule import SessionFrames, session_labels
    from mouseemo.data.neural_datamodule import activity_on_camera_clock, spans_gap
    from mouseemo.data.session import Session
    from mouseemo.data.sync import nearest_indices, read_timestamps
    from mouseemo.data.video import FrameCache, VideoReader, parse_crop
    from mouseemo.models.checkpoint import load_model

    device = torch.device(device)
    loaded = load_model(ckpt, device=device)
    module = loaded.module
    if not getattr(module, "is_joint_encoder", False):
        raise ConfigError(f"{ckpt} is not a joint face-neural encoder (train one with experiment=joint)")
    rec = dict(module.data_record or {})
    if not rec.get("window"):
        raise DataError(f"{ckpt}: no data settings recorded with the joint encoder")
    session = Session.open(folder)
    name = session.name
    layer = session_layer or name
    known = module.sessions
    if layer not in known:
        hint = "" if session_layer else "; pass --session-layer NAME to use the layer of the same neurons"
        raise ConfigError(f"{ckpt} has no neural layer for session {layer} (it has {sorted(known)}){hint}")
    window = int(rec["window"])
    lag_s = float(rec.get("lag_s") or 0.0)
    size = tuple(int(v) for v in rec["image_size"]) if rec.get("image_size") else None
    crop = parse_crop(rec["crop"]) if rec.get("crop") else None
    if crop is None and session.meta.get("crop"):
        crop = parse_crop(session.meta["crop"])
    cache_dir = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "mouseemo-cache"
    cache = FrameCache.get_or_build(session.video, cache_dir, crop, size)
    if session.face_timestamps is not None:
        with VideoReader(session.video, timestamps=session.face_timestamps) as vr:
            vr._num_frames = len(cache)
            times = vr.timestamps
    else:
        times = np.arange(len(cache), dtype=np.float64) / (session.fps or 30.0)
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
        )
    num = act.neural.shape[1]
    if num != known[layer]:
        raise ConfigError(
            f"{session.path} has {num} neurons but the checkpoint's layer for {layer} takes {known[layer]}: "
            "a different field of view needs its own session layer (train with this session)"
        )
    neural = act.neural
    if rec.get("zscore", True):
        stats = module.session_stats.get(layer) if layer == name else None
        valid_rows = neural[act.valid]
        mu = np.asarray(stats["mean"], np.float32) if stats else valid_rows.mean(0)
        sd = np.asarray(stats["std"], np.float32) if stats else np.maximum(valid_rows.std(0), 1e-6)
        neural = np.where(act.valid[:, None], (neural - mu) / sd, 0.0).astype(np.float32)
    # complete windows ending at each camera frame
    ok = act.valid
    csum = np.concatenate([[0], np.cumsum(ok)])
    full = np.zeros(len(ok), bool)
    if len(ok) >= window:
        starts_ok = (csum[window:] - csum[:-window]) == window
        if window > 1:
            starts_ok &= ~spans_gap(times, window)
        full[window - 1 :] = starts_ok
    t_img = read_timestamps(session.imaging_timestamps)
    fps = 1.0 / float(np.median(np.diff(times)))
    cam = nearest_indices(t_img + lag_s, times, max_dist=0.75 / fps)
    keep = np.flatnonzero((cam >= 0) & full[np.maximum(cam, 0)])
    if len(keep) == 0:
        raise DataError(f"{session.path}: no imaging frame has a complete {window}-frame camera window")
    ends = cam[keep]
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


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    check_out_file(out, args.overwrite)
    if out.parent.is_dir():
        remove_stale_temps(out.parent)  # left by a run that was killed
    if out.suffix != ".npz":
        raise ConfigError(f"--out must be a .npz file; got {out}")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1; got {args.batch_size}")
    arrays = embed_session(
        args.session, args.ckpt, session_layer=args.session_layer, batch_size=args.batch_size,
        cache_dir=args.cache_dir, device=pick_device(args.device),
    )  # fmt: skip
    save_npz_atomic(out, **arrays)
    m, d = arrays["neural"].shape
    print(
        f"wrote {out}: {m} imaging frames x {d}-d embeddings (session {arrays['session']}, layer {arrays['layer']})"
    )
    return 0
