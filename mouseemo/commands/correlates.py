"""``mouseemo correlates``: which neurons of a session go with which facial expression.

Example::

    mouseemo correlates data/m01/s01 --out correlates/            # the session's own prototypes
    mouseemo correlates data/m01/s01 --out c/ --prototypes protos.npz --trace similarity
    mouseemo correlates data/m01/s01 --out c/ --ckpt logs/train/runs/<time>/checkpoints/epoch_009.ckpt
    mouseemo correlates suite2p_session/ --out c/ --traces behaviour.csv --imaging-fs 30

The face side gives one trace per emotion on the camera clock:

* no model: prototypes are built from the session's own ``events.csv`` (the paper's way), then every
  frame's HOG is scored against them: ``--trace intensity`` (default) unmixes each frame into the
  prototypical expressions (:func:`mouseemo.ops.similarity.expression_intensity`), ``--trace
  similarity`` is the paper's Pearson similarity to each prototype;
* ``--prototypes P.npz``: the same with prototypes from ``mouseemo prototypes``;
* ``--ckpt C.ckpt``: a trained model's per-frame scores (class probabilities, or similarities);
* ``--traces T.csv``: any traces with a ``time_s`` column (e.g. ``mouseemo predict`` output), on the
  clock of ``imaging_timestamps.csv`` (or of the imaging frames, ``frame / fs``, when there is none).

The traces are moved onto the imaging clock and correlated with every neuron
(:mod:`mouseemo.analysis.correlates`). Written to ``--out``: ``neurons.csv`` (one row per neuron:
``neuron, preferred, r, lag_s, p, q, significant, r_<emotion>..., p_<emotion>..., q_<emotion>...``),
``summary.json`` (fraction of neurons per emotion, settings, clock alignment, and the comparison with
``truth/neurons.csv`` on synthetic sessions), ``traces.npz`` (the face traces on the imaging clock),
``responses.png`` and ``examples.png``. All files are written to temporary names and renamed at the
end, ``summary.json`` last.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mouseemo.analysis.correlates import TAILS, TESTS
from mouseemo.analysis.correlates_run import (
    DEFAULT_LAG_S,
    correlates_to_folder,
    default_lags,
    parse_lags,
    parse_shifts,
    report,
)
from mouseemo.commands._args import add_crop_argument, batch_size, check_out_dir, finite_float
from mouseemo.data.imaging import DFF_WINDOW_S, SIGNALS
from mouseemo.errors import ConfigError, DataError
from mouseemo.inference.traces import TRACE_KINDS
from mouseemo.utils.device import pick_device


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "correlates",
        help="neurons vs facial expressions: correlation, circular-shift null, FDR, preferred emotion",
        description="Correlate every neuron of a session (Suite2p) with each emotion's face trace on the "
        "imaging clock; circular-shift null and Benjamini-Hochberg FDR; each neuron's preferred emotion.",
    )
    p.add_argument("session", metavar="SESSION", help="session folder (face video, events.csv, suite2p/)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--prototypes", metavar="P.npz", help="prototypes from `mouseemo prototypes`")
    src.add_argument("--ckpt", metavar="C.ckpt", help="a trained classifier or prototype checkpoint")
    src.add_argument("--traces", metavar="T.csv", help="face traces with a time_s column (no video needed)")
    p.add_argument("--trace", choices=TRACE_KINDS, default="intensity",
                   help="prototypes: unmixed expression intensity (default) or the paper's Pearson similarity")  # fmt: skip
    p.add_argument("--include-neutral", action="store_true", help="also test the neutral trace")
    p.add_argument("--signal", choices=SIGNALS, default="dff", help="neural signal (default dF/F)")
    p.add_argument("--dff-window", type=finite_float, default=DFF_WINDOW_S, metavar="S",
                   help=f"dF/F baseline window in seconds (default {DFF_WINDOW_S:g}, mouseemo's dF/F convention)")  # fmt: skip
    p.add_argument("--imaging-fs", type=finite_float, default=None, metavar="HZ",
                   help="imaging frame rate (default: session.json, the timestamps, or ops.npy)")  # fmt: skip
    p.add_argument("--all-rois", action="store_true", help="use every ROI, not only those labelled cells")
    p.add_argument("--lag-sweep", default=None, metavar="L|MIN,MAX,STEP",
                   help="lag(s) in seconds of neural activity after the face; the best one counts "
                   f"(default {DEFAULT_LAG_S} s, GCaMP's delay, for fluorescence; 0 for spks)")  # fmt: skip
    p.add_argument("--shifts", default="all", metavar="N|all",
                   help="circular shifts in the null: all (default, exact) or N drawn at random (>= 1000)")  # fmt: skip
    p.add_argument(
        "--min-shift",
        type=finite_float,
        default=0.0,
        metavar="S",
        help="shortest circular shift (0: exact test)",
    )
    p.add_argument("--test", choices=TESTS, default="pairs",
                   help="pairs (default): each (neuron, emotion) pair against its emotion's pooled "
                   "circular-shift null, FDR over all pairs; neurons: exact min-p over emotions per "
                   "neuron, FDR over neurons (needs long sessions)")  # fmt: skip
    p.add_argument("--alpha", type=finite_float, default=0.05, help="false discovery rate")
    p.add_argument("--tail", choices=TAILS, default="greater", help="greater: excited neurons only")
    p.add_argument("--min-overlap", type=finite_float, default=10.0, metavar="S",
                   help="shortest acceptable camera/imaging overlap")  # fmt: skip
    add_crop_argument(p, "the session's session.json crop, else the model's")
    p.add_argument("--pixels-per-cell", type=int, default=32, help="HOG cell size when building prototypes")
    p.add_argument("--n-frames", type=int, default=10, help="least-neutral frames per prototype")
    p.add_argument("--seed", type=int, default=0, help="draws the circular shifts")
    p.add_argument("--batch-size", type=batch_size, default=256, help="frames per step")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--no-plot", action="store_true", help="skip the figures")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs in --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    folder = Path(args.session)
    if not folder.is_dir():
        raise DataError(f"session folder not found: {folder}")
    out_dir = Path(args.out)
    check_out_dir(out_dir)
    if args.min_overlap < 0:
        raise ConfigError(f"--min-overlap must be >= 0 s; got {args.min_overlap:g}")
    num_shifts = parse_shifts(args.shifts)
    lags = parse_lags(args.lag_sweep) if args.lag_sweep is not None else default_lags(args.signal)
    device = pick_device(args.device)
    face = dict(
        traces=args.traces, ckpt=args.ckpt, prototypes=args.prototypes, trace=args.trace, crop=args.crop,
        pixels_per_cell=args.pixels_per_cell, n_frames=args.n_frames, device=device,
        batch_size=args.batch_size,
    )  # fmt: skip
    result = correlates_to_folder(
        folder, face, out_dir, overwrite=args.overwrite, plot=not args.no_plot, signal=args.signal,
        imaging_fs=args.imaging_fs, dff_window_s=args.dff_window, all_rois=args.all_rois,
        include_neutral=args.include_neutral, lags_s=lags, num_shifts=num_shifts,
        min_shift_s=args.min_shift, alpha=args.alpha, tail=args.tail, min_overlap_s=args.min_overlap,
        seed=args.seed, test=args.test,
    )  # fmt: skip
    print(report(result, out_dir))
    return 0
