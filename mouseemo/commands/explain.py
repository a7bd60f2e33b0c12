"""``mouseemo explain``: explanation maps (which part of the face says which emotion) for some
frames of a video, or the prototype-difference maps of a prototypes file alone.

See :mod:`mouseemo.inference.explain` for what each map means.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mouseemo.commands._args import add_crop_argument, check_out_dir


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "explain",
        help="explanation maps per emotion for some frames (PNG grids + .npz)",
        description=(
            "Draw, for chosen frames of VIDEO, one map per emotion over the face: per-cell contributions "
            "to the Pearson similarity for HOG prototype models (--prototypes, or a model=hog_proto "
            "checkpoint), Grad-CAM or integrated gradients for classifier checkpoints (needs captum: "
            'pip install "mouseemo[explain]"). Without VIDEO, --prototypes draws where each prototype '
            "differs from neutral. Writes <stem>_frame<N>.png per frame and <stem>.explain.npz into --out."
        ),
    )
    p.add_argument(
        "video", metavar="VIDEO", type=Path, nargs="?", default=None, help="face video or session folder"
    )
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--prototypes", metavar="PROTOS.npz", help="prototypes from `mouseemo prototypes`")
    model.add_argument("--ckpt", metavar="MODEL.ckpt", help="a checkpoint written by `mouseemo train`")
    p.add_argument(
        "--frames", default=None, metavar="LIST", help="frames to explain, e.g. 10,20,100-120 (at most 500)"
    )
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    p.add_argument(
        "--method",
        default=None,
        choices=("gradcam", "ig"),
        help="classifier checkpoints: gradcam (default) or ig (integrated gradients)",
    )
    p.add_argument(
        "--ig-steps", type=int, default=32, metavar="N", help="integration steps for ig (32; at most 1000)"
    )
    add_crop_argument(p, "a session folder's session.json crop, else the model's")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--quiet", action="store_true", help="do not list the files written")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mouseemo.inference.explain import run_explain
    from mouseemo.utils.device import pick_device

    check_out_dir(args.out)
    written = run_explain(
        args.video, args.prototypes, args.ckpt, args.frames, args.out, args.method, args.crop,
        pick_device(args.device), args.overwrite, args.ig_steps,
    )  # fmt: skip
    if not args.quiet:
        for path in written:
            print(f"wrote {path}", file=sys.stderr)
    return 0
