"""``mouseemo predict``: emotion-state time series for new face videos, many at a time.

Example::

    mouseemo predict recordings/ --prototypes protos.npz --out predictions/
    mouseemo predict data/manifest.csv 'extra/*.avi' --ckpt best.ckpt --out predictions/ --workers 2 --overlay
    mouseemo predict new_mouse/ --prototypes protos.npz --neutral own --out predictions/  # another animal

INPUT may be a video file, a session folder (its face video, ``events.csv`` and
``face_timestamps.csv``), a dataset folder with a ``manifest.csv``, the ``manifest.csv`` itself, any
other folder (searched recursively: session folders and video files), or a glob pattern. Each video
streams through :func:`mouseemo.inference.pipeline.predict_video` and gets ``<out>/<stem>.csv``
(``frame,time_s,label,<prefix>_<name>...,rateable,unrateable_score``), ``<stem>.json`` (summary +
QC) and ``<stem>.png``; ``--overlay`` adds ``<stem>.overlay.mp4``, ``--nwb`` ``<stem>.nwb``. The
stem is the file's name for a video given directly, ``<animal>_<session>`` for a session, and the
path below the searched folder (``/`` -> ``_``) for a video found in one. ``--abstain`` leaves the
label of unrateable frames empty (:mod:`mouseemo.inference.rateable`).

A video that cannot be processed (missing, empty, corrupt, unsupported codec, crop outside the
frame, frames the model cannot score) gets one error line and no output; the others are processed,
and the exit status is 2. Finished videos (all outputs present) are skipped unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

import torch

from mouseemo.commands import predict_cluster
from mouseemo.commands._args import add_crop_argument, batch_size, check_out_dir, finite_float
from mouseemo.data.decode import DECODERS, resolve_decoder
from mouseemo.errors import ConfigError
from mouseemo.inference.batch import format_table, predict_inputs
from mouseemo.inference.nwb import require_nwb
from mouseemo.inference.pipeline import PredictOptions
from mouseemo.inference.scorers import load_scorer
from mouseemo.utils.device import pick_device


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict",
        help="emotion-state time series for face videos: CSV + summary JSON (with QC) + plot per video",
        description="Score every frame of face videos with prototypes (Pearson similarity of HOG "
        "features) or a trained checkpoint, and write <out>/<stem>.csv, .json and .png per video "
        "(optionally an overlay video and NWB). Videos stream in chunks, decoded ahead on a "
        "background thread; finished videos are skipped; a video that fails gets one error line.",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="video files, session folders, folders (searched recursively), manifest.csv, or glob patterns",
    )
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--prototypes", metavar="PROTOS.npz", help="prototypes from `mouseemo prototypes`")
    model.add_argument("--ckpt", metavar="MODEL.ckpt", help="a checkpoint written by `mouseemo train`")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    add_crop_argument(p, "a session folder's session.json crop, else the model's")
    p.add_argument(
        "--events",
        action="append",
        metavar="EVENTS.csv",
        help="events file, once per INPUT, for per-stimulus readouts (default: the session's events.csv); "
        "trial-locked checkpoints (reference=trial) also take their stimulus onsets from it, or from a "
        "trials.csv (onset,duration,trigger) given here (default: the session's trials.csv)",
    )
    p.add_argument(
        "--margin",
        type=finite_float,
        default=None,
        help="similarity models: best-minus-neutral below this stays neutral (default: the model's, or 0)",
    )
    p.add_argument(
        "--neutral",
        choices=("prototypes", "own"),
        default="prototypes",
        help="prototypes: compare frames with the file's prototypes as they are (the animal they were "
        "built from); own: carry every emotion prototype over as its change from the file's neutral "
        "onto each video's own neutral face (its baseline frames from its events, or --neutral-until-s; "
        "the median frame, with a warning, when it has neither), as for a new animal or day",
    )
    p.add_argument(
        "--neutral-until-s",
        type=finite_float,
        default=None,
        metavar="S",
        help="with --neutral own: the video's neutral is its frames before S seconds (instead of its events' baseline)",
    )
    p.add_argument(
        "--batch-size", type=batch_size, default=256, metavar="B", help="frames per step (default 256)"
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument(
        "--decoder",
        choices=DECODERS,
        default="auto",
        help="video decoding: opencv (CPU), torchcodec (NVDEC on a GPU; needs torchcodec), or auto: "
        "torchcodec when it is installed and --device is a GPU, else opencv (default auto)",
    )
    p.add_argument(
        "--workers", type=int, default=1, metavar="N", help="videos processed in parallel (default 1)"
    )
    p.add_argument(
        "--overlay", action="store_true", help="also write <stem>.overlay.mp4 (label and bars on the face)"
    )
    p.add_argument(
        "--overlay-map",
        action="store_true",
        help="with --overlay, blend the map of each frame's label onto the face (cheap for prototypes; "
        "Grad-CAM for checkpoints, slower)",
    )
    p.add_argument("--nwb", action="store_true", help="also write <stem>.nwb (needs pynwb: mouseemo[nwb])")
    p.add_argument("--no-plot", action="store_true", help="skip the traces plot")
    p.add_argument(
        "--min-confidence",
        type=finite_float,
        default=None,
        help="QC: frames below this confidence are low-confidence (default 0.5 for probabilities, "
        "0.01 for the gap between the best and second-best similarity)",
    )
    p.add_argument(
        "--abstain",
        action="store_true",
        help="leave the label empty on unrateable frames (rateable=0 in the CSV); the scores stay",
    )
    p.add_argument(
        "--rateable-threshold",
        type=finite_float,
        default=None,
        metavar="T",
        help="frames whose unrateable_score is above T (0-1) are unrateable (default: the threshold stored "
        "in <ckpt>.rateable.json, else 0.5: rules only)",
    )
    p.add_argument("--overwrite", action="store_true", help="redo videos whose outputs exist")
    p.add_argument("--quiet", action="store_true", help="no progress bars, skip lines or final table")
    predict_cluster.add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    if args.margin is not None and args.margin < 0:
        raise ConfigError(f"--margin must be >= 0; got {args.margin}")
    if args.rateable_threshold is not None and not 0 <= args.rateable_threshold <= 1:
        raise ConfigError(f"--rateable-threshold must be in [0, 1]; got {args.rateable_threshold}")
    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1; got {args.workers}")
    if args.nwb:
        require_nwb()
    if args.overlay_map and not args.overlay:
        raise ConfigError("--overlay-map draws on the overlay video: add --overlay")
    out_dir = Path(args.out)
    check_out_dir(out_dir)
    if args.neutral_until_s is not None and args.neutral != "own":
        raise ConfigError("--neutral-until-s needs --neutral own")
    predict_cluster.check_arguments(args)
    resolve_decoder(args.decoder, pick_device(args.device))  # torchcodec asked for and missing: one error
    model = dict(
        prototypes=args.prototypes, ckpt=args.ckpt, margin=args.margin, neutral=args.neutral,
        neutral_until_s=args.neutral_until_s,
    )  # fmt: skip
    if predict_cluster.wants_many(args):
        if args.executor:
            load_scorer(device=torch.device("cpu"), **model)  # a bad model is one error here, not one per job
        return predict_cluster.run_many(args, model, _options(args))
    scorer = load_scorer(
        args.prototypes, args.ckpt, pick_device(args.device), args.margin, args.neutral, args.neutral_until_s
    )
    results = predict_inputs(
        args.inputs,
        scorer,
        out_dir,
        _options(args),
        events=args.events,
        workers=args.workers,
        quiet=args.quiet,
    )
    if not args.quiet:
        print(format_table(results, out_dir))
    return 2 if any(r.status == "failed" for r in results) else 0


def _options(args: argparse.Namespace) -> PredictOptions:
    return PredictOptions(
        crop=args.crop,
        batch_size=args.batch_size,
        plot=not args.no_plot,
        overlay=args.overlay,
        overlay_map=args.overlay_map,
        nwb=args.nwb,
        min_confidence=args.min_confidence,
        cancel=threading.Event(),
        overwrite=args.overwrite,
        abstain=args.abstain,
        rateable_threshold=args.rateable_threshold,
        decoder=args.decoder,
    )
