"""``mouseemo synth``: write a synthetic dataset (face videos, events, two-photon data, ground truth)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mouseemo.commands._args import finite_float
from mouseemo.data.synthetic import SynthConfig, generate_dataset
from mouseemo.errors import ConfigError


def _parse_size(text: str) -> tuple[int, int]:
    parts = str(text).lower().replace("×", "x").split("x")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--size must look like HxW (e.g. 240x320), got {text!r}") from None
    return h, w


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synth",
        help="write a synthetic dataset: face videos, events, Suite2p output and ground truth",
        description=(
            "Write <out>/<animal>/<session>/ folders (m01/s01, ...) and <out>/manifest.csv with a rendered "
            "face "
            "video, stimulus events, a simulated two-photon population and the ground truth in truth/. "
            "The same seed gives the same data."
        ),
    )
    p.add_argument("--out", required=True, type=Path, help="dataset root to write")
    p.add_argument("--mice", type=int, default=2, help="number of animals (default 2)")
    p.add_argument(
        "--minutes",
        type=finite_float,
        default=3.0,
        help="session length in minutes (default 3; >= 1 gives all labels)",
    )
    p.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    p.add_argument("--sessions", type=int, default=1, help="sessions per animal (default 1)")
    p.add_argument(
        "--size", default="240x320", help="video frame size HxW, even numbers >= 64 (default 240x320)"
    )
    p.add_argument("--fps", type=finite_float, default=20.0, help="camera frame rate (default 20)")
    p.add_argument(
        "--nuisance", default="medium", help="camera/lighting/grooming nuisance: low, medium or high"
    )
    p.add_argument("--neurons", type=int, default=200, help="two-photon ROIs per animal (default 200)")
    p.add_argument("--imaging-fs", type=finite_float, default=15.0, help="two-photon frame rate (default 15)")
    p.add_argument("--no-imaging", action="store_true", help="skip the two-photon side")
    p.add_argument("--tiff", action="store_true", help="also write the raw two-photon movie imaging.tif")
    p.add_argument("--overwrite", action="store_true", help="replace existing session folders")
    p.add_argument("--workers", type=int, default=None, help="parallel processes (default: CPU cores)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    cfg = SynthConfig(
        num_mice=args.mice,
        minutes=args.minutes,
        seed=args.seed,
        size=_parse_size(args.size),
        fps=args.fps,
        nuisance=args.nuisance,
        imaging=not args.no_imaging,
        num_sessions=args.sessions,
        num_neurons=args.neurons,
        imaging_fs=args.imaging_fs,
        tiff=args.tiff,
    ).validate()
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    paths = generate_dataset(
        args.out,
        num_mice=cfg.num_mice,
        minutes=cfg.minutes,
        seed=cfg.seed,
        size=cfg.size,
        fps=cfg.fps,
        nuisance=cfg.nuisance,
        imaging=cfg.imaging,
        num_sessions=cfg.num_sessions,
        num_neurons=cfg.num_neurons,
        imaging_fs=cfg.imaging_fs,
        tiff=cfg.tiff,
        progress=True,
        overwrite=args.overwrite,
        workers=args.workers,
    )
    print(
        f"wrote {len(paths)} synthetic session(s) to {args.out} (manifest: {Path(args.out) / 'manifest.csv'})"
    )
    for path in paths:
        meta = json.loads((path / "session.json").read_text())
        counts = meta["params"]["label_frames"]
        shown = ", ".join(f"{k} {v}" for k, v in counts.items())
        imaging = meta["params"]["imaging_details"]
        img = f"; {imaging['num_neurons']} ROIs x {imaging['num_frames']} frames" if imaging else ""
        height, width = meta["size"]
        print(f"  {path}: {meta['num_frames']} frames {height}x{width} @ {meta['fps']:g} fps{img}")
        print(f"    labelled frames: {shown}")
    return 0
