"""``mouseemo live``: score a camera (or a video played live) frame by frame as the frames arrive.

Example::

    mouseemo live --camera 0 --prototypes protos.npz --csv live.csv --summary live.json
    mouseemo live --camera 0 --prototypes protos.npz --neutral own --reference-s 20 --lsl mouse-face
    mouseemo live --video face.mp4 --ckpt best.ckpt --csv live.csv --duration 60
    mouseemo live --camera 0 --ckpt trial_cnn.ckpt --every 30 --first 10 --csv live.csv  # trial-locked

Frames go through a bounded queue to a scoring thread; when scoring falls behind, the oldest frames
are dropped and counted (:mod:`mouseemo.inference.live`). A status line goes to stderr every second
(unless ``--quiet``); ``--summary`` gets latency, frame counts and why the session stopped.
Ctrl-C or SIGTERM stops the session cleanly, at any moment (the warm-up included): capture stops,
the frames captured are scored or counted as dropped, and it exits with status 0, the CSV and
summary complete. Every option and every output path is checked before the session starts; the
CSV appears with its first scored frames, so a session that fails before any leaves no CSV.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mouseemo.commands._args import add_crop_argument, check_distinct_paths, finite_float, prepare_out_file
from mouseemo.errors import ConfigError
from mouseemo.inference.inputs import resolve_inputs
from mouseemo.inference.live import (
    CameraSource,
    CsvSink,
    Every,
    LiveOptions,
    LiveSession,
    VideoFileSource,
    read_reference,
)
from mouseemo.inference.scorers import load_scorer
from mouseemo.utils.device import pick_device


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "live",
        help="score a camera (or a video played live) frame by frame as frames arrive: CSV, LSL, latency",
        description="Score frames as they arrive, with prototypes or a checkpoint, for closed-loop "
        "experiments: each frame gets its scores, label, capture and score time. Outputs: a CSV "
        "(--csv), a Lab Streaming Layer outlet (--lsl), a summary JSON (--summary). When scoring "
        "falls behind, the oldest frames are dropped and counted.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--camera", metavar="INDEX", help="OpenCV camera index (or a device path / stream URL)")
    src.add_argument(
        "--video",
        metavar="FILE",
        help="a video file or session folder (its face video), played at its own frame rate",
    )
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--prototypes", metavar="PROTOS.npz", help="prototypes from `mouseemo prototypes`")
    model.add_argument("--ckpt", metavar="MODEL.ckpt", help="a checkpoint written by `mouseemo train`")
    p.add_argument(
        "--neutral",
        choices=("prototypes", "own"),
        default="prototypes",
        help="prototypes: the file's neutral; own: this session's neutral face, from its first "
        "--reference-s seconds (or --reference)",
    )
    p.add_argument(
        "--reference-s",
        type=finite_float,
        default=10.0,
        metavar="S",
        help="models that need the session (--neutral own, checkpoints with a session reference): "
        "take it from the frames of the first S seconds, which are then scored as warm-up frames (default 10)",
    )
    p.add_argument(
        "--reference",
        metavar="FILE",
        help="take the session reference / own neutral from this image or .npy of frames instead (no warm-up)",
    )
    p.add_argument(
        "--onsets",
        metavar="T1,T2,...",
        help="trial-locked checkpoints (reference=trial): stimulus onsets, seconds since the first frame",
    )
    p.add_argument(
        "--every",
        type=finite_float,
        default=None,
        metavar="PERIOD",
        help="trial-locked checkpoints: a stimulus every PERIOD seconds, from --first",
    )
    p.add_argument(
        "--first",
        type=finite_float,
        default=0.0,
        metavar="T0",
        help="with --every: the first onset (default 0)",
    )
    p.add_argument(
        "--lsl-markers",
        metavar="NAME",
        help="trial-locked checkpoints: stimulus onsets from this Lab Streaming Layer marker stream "
        "(each sample an onset at its timestamp; needs pylsl); frames wait one pre-stimulus window",
    )
    add_crop_argument(p, "a session folder's session.json crop, else the model's")
    p.add_argument("--margin", type=finite_float, default=None, help="similarity models: as in predict")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        metavar="N",
        help="torch CPU threads for scoring (default 1: one frame at a time gains little from more, and on "
        "a busy machine they wait for each other, which lengthens the latency tail)",
    )
    p.add_argument("--csv", metavar="FILE", help="one row per scored frame, appended as frames are scored")
    p.add_argument(
        "--lsl",
        metavar="NAME",
        help='a Lab Streaming Layer outlet of this name (pip install "mouseemo[live]")',
    )
    p.add_argument("--summary", metavar="FILE", help="summary JSON written at the end")
    p.add_argument(
        "--plot", metavar="FILE.png", help="with --csv: a figure of the scores and latency, drawn at the end"
    )
    p.add_argument("--duration", type=finite_float, default=None, metavar="S", help="stop after S seconds")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N captured frames")
    p.add_argument(
        "--as-fast-as-possible",
        action="store_true",
        help="--video: deliver frames as fast as they decode instead of at the video's rate",
    )
    p.add_argument(
        "--no-drop",
        action="store_true",
        help="the source waits for the scorer instead of frames being dropped (replays of files)",
    )
    p.add_argument(
        "--queue-size", type=int, default=1, metavar="N", help="frames waiting at most (default 1)"
    )
    p.add_argument(
        "--stall-timeout",
        type=finite_float,
        default=5.0,
        metavar="S",
        help="stop when the source delivers no frame for S seconds (default 5)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --csv / --summary / --plot")
    p.add_argument("--quiet", action="store_true", help="no status lines")
    p.set_defaults(func=run)


def _warn(msg: str) -> None:
    print(f"mouseemo: warning: {msg}", file=sys.stderr, flush=True)


def _status(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _check_options(args: argparse.Namespace) -> None:
    if args.plot is not None and args.csv is None:
        raise ConfigError("--plot draws the --csv rows: give --csv too")
    if args.reference_s <= 0:
        raise ConfigError(f"--reference-s must be > 0; got {args.reference_s}")
    if args.threads < 1:
        raise ConfigError(f"--threads must be >= 1; got {args.threads}")
    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError(f"--max-frames must be >= 1; got {args.max_frames}")
    if args.duration is not None and args.duration <= 0:
        raise ConfigError(f"--duration must be > 0; got {args.duration}")
    if args.stall_timeout <= 0:
        raise ConfigError(f"--stall-timeout must be > 0; got {args.stall_timeout}")
    if args.queue_size < 1:
        raise ConfigError(f"--queue-size must be >= 1; got {args.queue_size}")
    if args.margin is not None and args.margin < 0:
        raise ConfigError(f"--margin must be >= 0; got {args.margin}")
    if args.as_fast_as_possible and args.video is None:
        raise ConfigError("--as-fast-as-possible applies to --video")
    if sum(x is not None for x in (args.onsets, args.every, args.lsl_markers)) > 1:
        raise ConfigError("give one of --onsets, --every and --lsl-markers")
    if args.first != 0.0 and args.every is None:
        raise ConfigError("--first applies to --every")
    outputs = _paths(args, "csv", "summary", "plot")
    check_distinct_paths({**_paths(args, "video", "prototypes", "ckpt", "reference"), **outputs})
    for option, path in outputs.items():
        prepare_out_file(path, args.overwrite, option)


def _onsets(args: argparse.Namespace, scorer):
    """The stimulus schedule of a trial-locked model (``None``: onsets come from triggers)."""
    trial = getattr(scorer, "reference_kind", None) == "trial"
    given = [f for f, v in (("--onsets", args.onsets), ("--every", args.every), ("--lsl-markers", args.lsl_markers))
             if v is not None]  # fmt: skip
    if not trial:
        if given:
            raise ConfigError(
                f"{given[0]}: stimulus onsets are for trial-locked checkpoints (reference=trial)"
            )
        return None
    if not given:
        raise ConfigError(
            f"{args.ckpt} is a trial-locked model (reference=trial): give the stimulus onsets with "
            "--onsets, --every (and --first) or --lsl-markers"
        )
    if args.every is not None:
        return Every(args.every, args.first)
    if args.onsets is not None:
        try:
            return [float(v) for v in args.onsets.split(",")]
        except ValueError:
            raise ConfigError(f"--onsets must be seconds separated by commas; got {args.onsets!r}") from None
    return None


def _paths(args: argparse.Namespace, *names: str) -> dict[str, Path]:
    return {f"--{n}": Path(getattr(args, n)) for n in names if getattr(args, n) is not None}


def run(args: argparse.Namespace) -> int:
    _check_options(args)
    video, session_meta = args.video, None
    if video is not None and Path(video).is_dir():  # a session folder: its video and session.json
        (item,) = resolve_inputs([video], None, need_events=False)
        video, session_meta = item.video, item.meta
    lsl = None
    if args.lsl is not None or args.lsl_markers is not None:
        from mouseemo.inference.live import lsl

        lsl.require_pylsl("--lsl output" if args.lsl is not None else "--lsl-markers")
    import torch

    torch.set_num_threads(args.threads)
    scorer = load_scorer(args.prototypes, args.ckpt, pick_device(args.device), args.margin, args.neutral)
    onsets = _onsets(args, scorer)
    reference = read_reference(args.reference) if args.reference is not None else None
    if reference is not None and not scorer.needs_reference:
        raise ConfigError(
            "--reference: this model needs no session reference (give --neutral own with --prototypes, "
            "or a checkpoint trained with one)"
        )
    if args.camera is not None:
        index = int(args.camera) if str(args.camera).isdigit() else args.camera
        source = CameraSource(index)
    else:
        source = VideoFileSource(video, realtime=not args.as_fast_as_possible)
    opts = LiveOptions(
        crop=args.crop,
        session_meta=session_meta,
        reference_s=args.reference_s,
        reference=reference,
        queue_size=args.queue_size,
        drop=not args.no_drop,
        duration_s=args.duration,
        max_frames=args.max_frames,
        stall_timeout_s=args.stall_timeout,
        status_s=None if args.quiet else 1.0,
        onsets=onsets,
    )
    sinks, csv_sink = [], None
    try:
        if args.csv is not None:
            csv_sink = CsvSink(args.csv, scorer.columns)
            sinks.append(csv_sink)
        if args.lsl is not None:
            sinks.append(lsl.LslSink(args.lsl, scorer.names, scorer.prefix, source.fps))
        session = LiveSession(source, scorer, opts, sinks=sinks, status=_status, warn=_warn)
        if args.lsl_markers is not None:
            sinks.append(lsl.LslMarkers(args.lsl_markers, session.trigger))  # closed with the sinks
    except BaseException:
        for s in sinks:
            s.close()
        source.close()
        raise
    summary = session.run()
    if csv_sink is not None and csv_sink.written:
        summary["csv"] = str(args.csv)
    elif csv_sink is not None:
        _warn(f"no frame was scored: --csv {args.csv} not written")
    if args.lsl is not None:
        summary["lsl"] = args.lsl
    if args.plot is not None:
        if summary["frames"]["scored"]:
            from mouseemo.viz.live import plot_live  # matplotlib only when a figure is asked for

            plot_live(args.csv, args.plot, f"mouseemo live: {session.source.describe()}")
            summary["plot"] = str(args.plot)
        else:
            _warn(f"no frame was scored: --plot {args.plot} not drawn")
    if args.summary is not None:
        session.write_summary(args.summary, summary)
    if not args.quiet:
        lat, fr = summary["latency_ms"], summary["frames"]
        latency = (
            f"latency median {lat['median']} ms, p99 {lat['p99']} ms"
            if lat["frames"]
            else "no latency (warm-up frames only)"
        )
        print(
            f"mouseemo live: {summary['stop_reason']}; captured {fr['captured']}, scored {fr['scored']}, "
            f"dropped {fr['dropped']}; {latency}",
            file=sys.stderr,
        )
    return 0
