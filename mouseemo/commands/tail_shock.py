"""``mouseemo tail-shock build``: sessions from tail-shock trial clips, one per mouse.

Example::

    mouseemo tail-shock build --src ../shared/data/real/der_tail_shock --out data/tail_shock
    python evaluate.py experiment=tail_shock data.root=data/tail_shock

The work is :func:`mouseemo.data.tail_shock.build_tail_shock_sessions`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mouseemo.commands._args import check_out_dir, finite_float
from mouseemo.data.crop import CROP_PRESETS
from mouseemo.data.tail_shock import (
    DEFAULT_CURRENTS,
    ORDERS,
    describe,
    plan_tail_shock_sessions,
    write_sessions,
)
from mouseemo.errors import ConfigError


def _currents(text: str) -> list[float]:
    try:
        values = [finite_float(v) for v in text.split(",") if v.strip()]
    except argparse.ArgumentTypeError:
        values = []
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated currents >= 0 in µA, got {text!r}")
    return values


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tail-shock",
        help="build sessions from tail-shock trial clips (one per mouse, trials end to end)",
        description="Tail-shock trial clips (a folder per mouse with trials.csv clip,current_uA,... and "
        "events.csv windows on each clip's clock) -> one session folder per mouse.",
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    b = sub.add_parser(
        "build",
        help="lay the clips of the chosen currents end to end into <out>/<mouse>/tail_shock/",
        description="Write face.avi (lossless FFV1, gray; the clips in a seeded random order by default), events.csv (the windows of clips with a "
        "current above 0, moved to the clip's place), trials.csv (every clip) and session.json per mouse. "
        "Everything is checked before anything is written, and the sessions are renamed into place "
        "together. Rerunning replaces the sessions an earlier build wrote; anything else needs --overwrite.",
    )
    b.add_argument(
        "--src", required=True, metavar="DIR", help="folder of mouse folders (or one mouse folder)"
    )
    b.add_argument("--out", required=True, metavar="DIR", help="dataset root to write")
    b.add_argument(
        "--currents",
        type=_currents,
        default=list(DEFAULT_CURRENTS),
        metavar="UA,UA,...",
        help="currents (µA) whose clips are used (default: %(default)s)",
    )
    b.add_argument(
        "--crop",
        default=None,
        metavar="X,Y,W,H|NAME",
        help="crop stored in session.json, as x,y,w,h or a preset name ("
        + ", ".join(f"{k}: {','.join(map(str, v))}" for k, v in sorted(CROP_PRESETS.items()))
        + ", the DER clips' head) (default: none)",
    )
    b.add_argument(
        "--order",
        choices=ORDERS,
        default="random",
        help="lay each mouse's clips in a seeded random order, so sham and shock trials interleave, or in "
        "trials.csv order (default: %(default)s)",
    )
    b.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the random order (with the mouse's name; default: %(default)s)",
    )
    b.add_argument("--fps", type=finite_float, default=None, help="frame rate (default: the clips')")
    b.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing <out>/<mouse>/tail_shock/ folders that an earlier build did not write",
    )
    b.set_defaults(func=run)
    p.set_defaults(func=lambda args: p.print_help() or 1)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    check_out_dir(out)
    if args.fps is not None and args.fps <= 0:
        raise ConfigError(f"--fps must be > 0; got {args.fps}")
    plans = plan_tail_shock_sessions(
        args.src, out, args.currents, args.crop, args.fps, args.overwrite, order=args.order, seed=args.seed
    )
    sessions = write_sessions(plans)
    print(describe(sessions))
    return 0
