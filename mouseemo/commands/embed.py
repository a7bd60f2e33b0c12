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
view, imaged again; the neuron count must match), or ``--fit-session-layer NEW.ckpt`` to fit a layer
for it from its own paired minutes with the towers frozen (a new field of view).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mouseemo.commands._args import batch_size, check_out_file, finite_float, prepare_out_file
from mouseemo.errors import ConfigError
from mouseemo.inference.embed import embed_session
from mouseemo.inference.session_layer import fit_session_layer
from mouseemo.utils.device import pick_device
from mouseemo.utils.io import save_npz_atomic


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
    p.add_argument("--fit-session-layer", default=None, metavar="NEW.ckpt",
                   help="a session the model was not trained on (a new field of view): fit its neural input "
                   "layer from its own paired data with the towers frozen, write the checkpoint with that "
                   "layer to NEW.ckpt, and embed with it")  # fmt: skip
    p.add_argument("--fit-until-s", type=finite_float, default=None, metavar="SECONDS",
                   help="with --fit-session-layer: fit on the windows before this camera time only")  # fmt: skip
    p.add_argument("--batch-size", type=batch_size, default=128, help="windows per step")
    p.add_argument("--cache-dir", default=None, help="decoded-frame cache (default: the system temp folder)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    prepare_out_file(out, args.overwrite)
    if out.suffix != ".npz":
        raise ConfigError(f"--out must be a .npz file; got {out}")
    ckpt = args.ckpt
    if args.fit_session_layer:
        if args.session_layer:
            raise ConfigError("--fit-session-layer and --session-layer exclude each other")
        new = Path(args.fit_session_layer)
        check_out_file(new, args.overwrite)
        for other, flag in ((out, "--out"), (Path(ckpt), "--ckpt")):
            if new.resolve() == other.resolve():
                raise ConfigError(
                    f"--fit-session-layer {new} is also {flag}: give the new checkpoint its own file"
                )
        fit = fit_session_layer(args.session, ckpt, args.fit_session_layer, fit_until_s=args.fit_until_s,
                                cache_dir=args.cache_dir)  # fmt: skip
        print(f"fitted a {fit['neurons']}-neuron layer for {fit['session']} on {fit['windows']} windows: "
              f"wrote {args.fit_session_layer}")  # fmt: skip
        ckpt = args.fit_session_layer
    arrays = embed_session(
        args.session, ckpt, session_layer=args.session_layer, batch_size=args.batch_size,
        cache_dir=args.cache_dir, device=pick_device(args.device),
    )  # fmt: skip
    save_npz_atomic(out, **arrays)
    m, d = arrays["neural"].shape
    print(
        f"wrote {out}: {m} imaging frames x {d}-d embeddings (session {arrays['session']}, layer {arrays['layer']})"
    )
    return 0
