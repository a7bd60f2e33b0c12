"""``mouseemo predict``: emotion-state time series for new face videos, many at a time.

Example::

    mouseemo predict recordings/ --prototypes protos.npz --out predictions/
    mouseemo predict data/manifest.csv 'extra/*.avi' --ckpt best.ckpt --out predictions/ --workers 2 --overlay

INPUT may be a video file, a session folder (its face video, ``events.csv`` and
``face_timestamps.csv``), a dataset folder with a ``manifest.csv``, the ``manifest.csv`` itself, any
other folder (searched recursively: session folders and video files), or a glob pattern. Each video
streams through :func:`mouseemo.inference.pipeline.predict_video` and gets
``<out>/<stem>.csv`` (``frame,time_s,label,<prefix>_<name>...``), ``<stem>.json`` (summary + QC) and
``<stem>.png``; ``--overlay`` adds ``<stem>.overlay.mp4``, ``--nwb`` ``<stem>.nwb``. The stem is the
file's name for a video given directly, ``<animal>_<session>`` for a session, and the path below
the searched folder (``/`` -> ``_``) for a video found in one.

A video that cannot be processed (missing, empty, corrupt, unsupported codec, crop outside the
frame, frames the model cannot score) gets one error line and no output; the others are processed,
and the exit status is 2. Finished videos (all outputs present) are skipped unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from mouseemo.commands._args import check_out_dir, finite_float
from mouseemo.constants import VIDEO_EXTENSIONS
from mouseemo.errors import ConfigError, MouseemoError

_GLOB_CHARS = "*?["


@dataclass
class InputFailure:
    """An INPUT that yields no video to predict (missing file, empty folder, bad manifest row)."""

    name: str
    message: str


@dataclass
class Result:
    """What happened to one video, for the final table."""

    name: str
    stem: str = ""
    status: str = "failed"  # done | skipped | failed
    frames: int | None = None
    fps: float | None = None
    message: str = ""
    warnings: list[str] = field(default_factory=list)


# -- inputs --------------------------------------------------------------------------------------
def _session_input(
    path: Path, animal: str | None = None, session: str | None = None, events: str | None = None
):
    from mouseemo.data.session import Session
    from mouseemo.errors import DataError
    from mouseemo.inference.pipeline import PredictInput

    s = Session.open(path, animal=animal, session=session)
    if events is not None and not Path(events).is_file():
        raise DataError(f"events file not found: {events}")
    ev = Path(events) if events is not None else s.events_path
    return PredictInput(video=s.video, events=ev, stem=f"{s.animal}_{s.session}", meta=s.meta)


def _file_input(path: Path, events: str | None, stem: str | None = None):
    from mouseemo.commands.prototypes import resolve_inputs
    from mouseemo.inference.pipeline import PredictInput

    vi = resolve_inputs([str(path)], [events] if events else None, need_events=False)[0]
    return PredictInput(video=vi.video, events=vi.events, stem=stem or vi.stem)


def _guarded(name: str, make, *args):
    """``[make(*args)]``, or ``[InputFailure]`` when it raises a user error."""
    try:
        return [make(*args)]
    except MouseemoError as err:
        return [InputFailure(name, str(err))]


def _manifest_inputs(manifest: Path) -> list:
    from mouseemo.data.session import read_manifest

    try:
        rows = read_manifest(manifest)
    except MouseemoError as err:
        return [InputFailure(str(manifest), str(err))]
    return [
        item for animal, session, p in rows for item in _guarded(str(p), _session_input, p, animal, session)
    ]


def _folder_inputs(root: Path, exclude: Path | None) -> list:
    """Session folders and video files below ``root`` (hidden folders and ``exclude`` left out)."""
    from mouseemo.data.session import looks_like_session

    found: list = []
    seen: set[Path] = set()

    def visit(d: Path) -> None:
        real = d.resolve()
        if real == exclude or real in seen:  # the output folder; a symlink loop
            return
        seen.add(real)
        if d != root and looks_like_session(d):
            found.extend(_guarded(str(d), _session_input, d))
            return
        try:
            children = sorted(d.iterdir())
        except OSError as err:
            found.append(InputFailure(str(d), f"cannot list folder {d}: {err.strerror}"))
            return
        for child in children:
            if child.name.startswith("."):
                continue
            if child.is_dir():
                visit(child)
            elif child.suffix.lower() in VIDEO_EXTENSIONS:
                stem = "_".join(child.relative_to(root).with_suffix("").parts)
                found.extend(_guarded(str(child), _file_input, child, None, stem))

    visit(root)
    if not found:
        return [
            InputFailure(
                str(root), f"no session folders or videos ({', '.join(VIDEO_EXTENSIONS)}) under {root}"
            )
        ]
    return found


def _path_inputs(p: Path, events: str | None, exclude: Path | None) -> list:
    from mouseemo.data.session import looks_like_session

    if p.is_file():
        if p.suffix.lower() == ".csv" and events is None:
            return _manifest_inputs(p)
        return _guarded(str(p), _file_input, p, events)
    if p.is_dir():
        if (p / "manifest.csv").is_file():
            return _manifest_inputs(p / "manifest.csv")
        if looks_like_session(p):
            return _guarded(str(p), _session_input, p, None, None, events)
        return _folder_inputs(p, exclude)
    return [InputFailure(str(p), f"video not found: {p}")]


def expand_inputs(raw: list[str], events: list[str] | None = None, exclude: str | Path | None = None) -> list:
    """Turn INPUT arguments into :class:`~mouseemo.inference.pipeline.PredictInput` items and
    :class:`InputFailure` entries (one per input that yields nothing), in order, without duplicates.

    Args:
        raw: files, folders, manifests or glob patterns.
        events: one events file per INPUT (each INPUT must then be a single video), or ``None``.
        exclude: a folder never searched (the output folder, which may hold overlay videos).

    Raises:
        ConfigError: ``--events`` given a number of times other than once per INPUT, or for an
            INPUT that is not a single video.
    """
    if events and len(events) != len(raw):
        raise ConfigError(f"give --events once per INPUT: {len(raw)} input(s), {len(events)} --events")
    exclude = Path(exclude).resolve() if exclude is not None else None
    items: list = []
    for i, arg in enumerate(raw):
        ev = events[i] if events else None
        p = Path(arg)
        if not p.exists() and any(c in arg for c in _GLOB_CHARS):
            matches = sorted(glob.glob(arg, recursive=True))
            if not matches:
                items.append(InputFailure(arg, f"no file matches {arg!r}"))
                continue
            got = [x for m in matches for x in _path_inputs(Path(m), ev, exclude)]
        else:
            got = _path_inputs(p, ev, exclude)
        if ev is not None and len(got) != 1:
            raise ConfigError(f"--events is given per video, but {arg} stands for {len(got)} videos")
        items.extend(got)
    seen: set[Path] = set()
    unique = []
    for item in items:
        if isinstance(item, InputFailure):
            unique.append(item)
            continue
        key = item.video.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return unique


# -- command line --------------------------------------------------------------------------------
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
    p.add_argument("--crop", default=None, metavar="X,Y,W,H", help="override the model's crop")
    p.add_argument(
        "--events",
        action="append",
        metavar="EVENTS.csv",
        help="events file, once per INPUT, for per-stimulus readouts (default: the session's events.csv)",
    )
    p.add_argument(
        "--margin",
        type=finite_float,
        default=None,
        help="similarity models: best-minus-neutral below this stays neutral (default: the model's, or 0)",
    )
    p.add_argument("--batch-size", type=int, default=256, metavar="B", help="frames per step (default 256)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument(
        "--workers", type=int, default=1, metavar="N", help="videos processed in parallel (default 1)"
    )
    p.add_argument(
        "--overlay", action="store_true", help="also write <stem>.overlay.mp4 (label and bars on the face)"
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
    p.add_argument("--overwrite", action="store_true", help="redo videos whose outputs exist")
    p.add_argument("--quiet", action="store_true", help="no progress bars, skip lines or final table")
    p.set_defaults(func=run)


class _Console:
    """Lines on stdout/stderr that do not break progress bars (shared by worker threads)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.lock = threading.Lock()
        self.bars = False

    def print(self, text: str, err: bool = False) -> None:
        if self.quiet and not err:
            return
        stream = sys.stderr if err else sys.stdout
        with self.lock:
            if self.bars:
                from tqdm.auto import tqdm

                tqdm.write(text, file=stream)
            else:
                print(text, file=stream, flush=True)


def _error_text(name: str, err: BaseException | str) -> str:
    """The error message, prefixed with the input's name unless it already names it."""
    msg = str(err) or type(err).__name__
    return msg if name in msg else f"{name}: {msg}"


def run(args: argparse.Namespace) -> int:
    from mouseemo.data.video import parse_crop
    from mouseemo.inference.pipeline import PredictOptions, is_finished
    from mouseemo.inference.scorers import load_scorer
    from mouseemo.utils.device import pick_device
    from mouseemo.utils.io import remove_stale_temps

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1; got {args.batch_size}")
    if args.margin is not None and args.margin < 0:
        raise ConfigError(f"--margin must be >= 0; got {args.margin}")
    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1; got {args.workers}")
    if args.nwb:
        from mouseemo.inference.nwb import require_nwb

        require_nwb()
    out_dir = Path(args.out)
    check_out_dir(out_dir)
    crop = parse_crop(args.crop)
    device = pick_device(args.device)
    scorer = load_scorer(args.prototypes, args.ckpt, device, args.margin)
    if out_dir.is_dir():
        remove_stale_temps(out_dir)  # left by a run that was killed
    entries = expand_inputs(args.inputs, args.events, exclude=out_dir)
    stems: dict[str, str] = {}
    for e in entries:
        if not isinstance(e, InputFailure):
            if e.stem in stems and stems[e.stem] != str(e.video):
                raise ConfigError(
                    f"{stems[e.stem]} and {e.video} would both write {out_dir / e.stem}.*; predict them separately"
                )
            stems[e.stem] = str(e.video)
    opts = PredictOptions(
        crop=crop,
        batch_size=args.batch_size,
        plot=not args.no_plot,
        overlay=args.overlay,
        nwb=args.nwb,
        min_confidence=args.min_confidence,
        cancel=threading.Event(),
        overwrite=args.overwrite,
    )
    console = _Console(args.quiet)
    results: list[Result] = []
    todo = []
    for e in entries:
        if isinstance(e, InputFailure):
            results.append(Result(name=e.name, message=_error_text(e.name, e.message)))
            console.print(f"mouseemo: error: {results[-1].message}", err=True)
        elif not args.overwrite and is_finished(out_dir, e.stem, opts):
            console.print(f"skip {e.video}: {out_dir / e.stem}.json exists (use --overwrite)")
            results.append(Result(name=str(e.video), stem=e.stem, status="skipped"))
        else:
            res = Result(name=str(e.video), stem=e.stem)
            results.append(res)
            todo.append((e, res))
    if todo:
        _process(todo, scorer, out_dir, opts, args.workers, console)
    if not args.quiet:
        print(format_table(results, out_dir))
    return 2 if any(r.status == "failed" for r in results) else 0


def _process(todo, scorer, out_dir: Path, opts, workers: int, console: _Console) -> None:
    from mouseemo.inference.pipeline import Cancelled, predict_video

    bars_on = not console.quiet and sys.stderr.isatty()
    overall = None
    slots = list(range(workers, 0, -1))
    slot_lock = threading.Lock()
    if bars_on:
        from tqdm.auto import tqdm

        console.bars = True
        overall = tqdm(total=len(todo), unit="video", desc="videos", position=0, dynamic_ncols=True)

    def one(entry, res: Result) -> None:
        if opts.cancel.is_set():  # interrupted while this video waited for a worker
            res.message = "interrupted"
            return
        bar = None
        with slot_lock:
            slot = slots.pop()
        t0 = time.perf_counter()
        try:

            def started(total):
                nonlocal bar
                if bars_on:
                    from tqdm.auto import tqdm

                    name = entry.stem if len(entry.stem) <= 24 else "…" + entry.stem[-23:]
                    bar = tqdm(
                        total=total, unit="frame", desc=name, position=slot, leave=False, dynamic_ncols=True
                    )

            summary = predict_video(
                entry,
                scorer,
                out_dir,
                opts,
                progress=lambda k: bar.update(k) if bar else None,
                on_start=started,
            )
            res.status = "done"
            res.frames = summary["frames"]
            res.fps = summary["frames"] / max(time.perf_counter() - t0, 1e-9)
            res.warnings = summary["warnings"]
            for w in res.warnings:
                console.print(f"mouseemo: warning: {entry.video}: {w}", err=True)
        except Cancelled:
            res.message = "interrupted"
        except MouseemoError as err:
            res.message = _error_text(str(entry.video), err)
            console.print(f"mouseemo: error: {res.message}", err=True)
        except Exception as err:  # noqa: BLE001 - one broken video must not stop the batch
            res.message = (
                _error_text(str(entry.video), err) + " (unexpected; MOUSEEMO_DEBUG=1 shows the traceback)"
            )
            console.print(f"mouseemo: error: {type(err).__name__}: {res.message}", err=True)
            if os.environ.get("MOUSEEMO_DEBUG"):
                console.print(traceback.format_exc(), err=True)
        finally:
            if bar is not None:
                bar.close()
            if overall is not None:
                overall.update(1)
            with slot_lock:
                slots.append(slot)

    pool = None
    try:
        if workers == 1:
            for entry, res in todo:
                one(entry, res)
        else:
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mouseemo-predict")
            futures = [pool.submit(one, entry, res) for entry, res in todo]
            for f in futures:
                while not f.done():  # a timed wait keeps Ctrl-C (and SIGTERM, see cli) responsive
                    time.sleep(0.05)
    except BaseException:
        # stop the running videos at their next chunk and drop the queued ones, before waiting
        opts.cancel.set()
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if overall is not None:
            overall.close()
        console.bars = False


def format_table(results: list[Result], out_dir: Path) -> str:
    """The final table: video, frames, fps (frames processed per second), status."""
    rows = []
    for r in results:
        if r.status == "done":
            status = "done" + (f" ({'; '.join(w.split(':')[0] for w in r.warnings)})" if r.warnings else "")
        elif r.status == "skipped":
            status = "skipped (finished before)"
        else:
            # the video column names the file already
            msg = r.message.replace(f": {r.name}", "").replace(f"{r.name}: ", "").replace(r.name, "it")
            status = f"failed: {msg if len(msg) <= 90 else msg[:87] + '...'}"
        rows.append(
            (
                r.name,
                "-" if r.frames is None else str(r.frames),
                "-" if r.fps is None else f"{r.fps:.0f}",
                status,
            )
        )
    head = ("video", "frames", "fps", "status")
    width = [max(len(head[i]), *(len(x[i]) for x in rows)) if rows else len(head[i]) for i in range(4)]
    width[0] = min(width[0], 60)

    def line(x) -> str:
        name = x[0] if len(x[0]) <= width[0] else "…" + x[0][-(width[0] - 1) :]
        return f"{name:<{width[0]}}  {x[1]:>{width[1]}}  {x[2]:>{width[2]}}  {x[3]}"

    done = sum(r.status == "done" for r in results)
    skipped = sum(r.status == "skipped" for r in results)
    failed = sum(r.status == "failed" for r in results)
    lines = [line(head), *(line(x) for x in rows)]
    lines.append(
        f"{done} done, {skipped} skipped, {failed} failed -> {out_dir}  (fps: frames processed per second)"
    )
    return "\n".join(lines)
