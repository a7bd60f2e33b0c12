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
from pathlib import Path

from mouseemo.commands._args import check_out_file
from mouseemo.errors import ConfigError
from mouseemo.inference.embed import embed_session
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
