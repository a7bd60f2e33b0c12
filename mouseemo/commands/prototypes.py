"""``mouseemo prototypes``: build prototypical expressions from videos and their stimulus events.

Example::

    mouseemo prototypes data/m01/s01 --out protos.npz --crop 40,20,256,192
    mouseemo prototypes face.mp4 --events events.csv --out protos.npz --mode window-mean

The work is :func:`mouseemo.inference.prototypes.build_from_videos` (HOG streamed chunk by chunk,
constant memory in the video's length).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mouseemo.commands._args import add_crop_argument, batch_size, parse_size, prepare_out_file
from mouseemo.errors import ConfigError
from mouseemo.inference.inputs import resolve_inputs
from mouseemo.inference.prototypes import build_from_videos
from mouseemo.models.components.prototypes import MODES
from mouseemo.utils.device import pick_device


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "prototypes",
        help="build prototypical expressions (neutral + one per stimulus label) from videos and events",
        description="Build prototypical expressions (Dolensek et al. 2020) from face videos and their "
        "events.csv (onset,duration,label[,value] in seconds on the video's clock).",
    )
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="face video(s) or session folder(s)")
    p.add_argument(
        "--events",
        action="append",
        metavar="EVENTS.csv",
        help="events file, once per VIDEO (default: the session folder's / the video's events.csv)",
    )
    p.add_argument("--out", required=True, metavar="PROTOS.npz", help="prototypes file to write")
    add_crop_argument(p, "each session folder's session.json crop, else the whole frame")
    p.add_argument("--resize", default=None, metavar="H,W", help="resize cropped frames before HOG")
    p.add_argument("--n-frames", type=int, default=10, help="least-neutral frames per emotion (k)")
    p.add_argument("--mode", choices=MODES, default="least-neutral", help="how emotion prototypes are built")
    p.add_argument("--drop-first-trial", action="store_true", help="leave each label's first trial out")
    p.add_argument(
        "--pool",
        choices=("groups", "frames"),
        default="groups",
        help="several videos: average per-video prototypes (groups) or pool their frames",
    )
    p.add_argument("--pixels-per-cell", type=int, default=32, help="HOG cell size in pixels")
    p.add_argument("--orientations", type=int, default=8, help="HOG orientation bins")
    p.add_argument("--no-sqrt", action="store_true", help="HOG without square-root compression")
    p.add_argument("--batch-size", type=batch_size, default=256, help="frames per HOG step")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    prepare_out_file(out, args.overwrite)
    if args.n_frames < 1:
        raise ConfigError(f"--n-frames must be >= 1; got {args.n_frames}")
    items = resolve_inputs(args.videos, args.events, need_events=True)
    protos = build_from_videos(
        items,
        crop=args.crop,
        hog={
            "orientations": args.orientations,
            "pixels_per_cell": args.pixels_per_cell,
            "transform_sqrt": not args.no_sqrt,
        },
        mode=args.mode,
        k=args.n_frames,
        drop_first_trial=args.drop_first_trial,
        pool=args.pool,
        resize=parse_size(args.resize),
        device=pick_device(args.device),
        chunk_size=args.batch_size,
    )
    protos.save(out)
    print(f"wrote {out}: prototypes {', '.join(protos.names)} ({protos.feature_dim} HOG features)")
    return 0
