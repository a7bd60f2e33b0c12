"""Many videos through :func:`~mouseemo.inference.pipeline.predict_video`, as ``mouseemo predict``
runs them: inputs expanded (:func:`~mouseemo.inference.inputs.expand_inputs`), finished videos
skipped, the others processed by ``workers`` threads with progress bars, one error line per video
that fails (the others go on), and a final table.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from mouseemo.errors import ConfigError, MouseemoError, for_user
from mouseemo.inference.inputs import InputFailure, VideoInput, expand_inputs
from mouseemo.inference.pipeline import Cancelled, PredictOptions, is_finished, predict_video
from mouseemo.inference.scorers import Scorer
from mouseemo.utils.io import remove_stale_temps


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


def predict_inputs(
    inputs: Sequence[str],
    scorer: Scorer,
    out_dir: str | Path,
    opts: PredictOptions,
    events: Sequence[str] | None = None,
    workers: int = 1,
    quiet: bool = False,
) -> list[Result]:
    """Predict every video that ``inputs`` (files, folders, manifests, globs) stand for into
    ``out_dir``; one :class:`Result` per video or failed input, in order.

    Videos whose outputs are all present are skipped unless ``opts.overwrite``. An input or video
    that fails gets one ``mouseemo: error:`` line on stderr; ``quiet`` leaves out the progress bars
    and skip lines.

    Raises:
        ConfigError: two videos would write the same stem; ``events`` does not match ``inputs``.
    """
    out_dir = Path(out_dir)
    entries = expand_inputs(inputs, events, exclude=out_dir)
    check_stems(entries, out_dir)
    return predict_entries(entries, scorer, out_dir, opts, workers=workers, quiet=quiet)


def check_stems(entries: Sequence[VideoInput | InputFailure], out_dir: Path) -> None:
    """ConfigError when two videos would write the same ``<out_dir>/<stem>.*``."""
    stems: dict[str, str] = {}
    for e in entries:
        if not isinstance(e, InputFailure):
            if e.stem in stems and stems[e.stem] != str(e.video):
                raise ConfigError(
                    f"{stems[e.stem]} and {e.video} would both write {out_dir / e.stem}.*; predict them separately"
                )
            stems[e.stem] = str(e.video)


def predict_entries(
    entries: Sequence[VideoInput | InputFailure],
    scorer: Scorer,
    out_dir: str | Path,
    opts: PredictOptions,
    workers: int = 1,
    quiet: bool = False,
) -> list[Result]:
    """:func:`predict_inputs` on inputs already expanded (:func:`~mouseemo.inference.inputs.expand_inputs`)."""
    out_dir = Path(out_dir)
    if out_dir.is_dir():
        remove_stale_temps(out_dir)  # left by a run that was killed
    if opts.cancel is None:
        opts.cancel = threading.Event()
    console = _Console(quiet)
    results: list[Result] = []
    todo = []
    for e in entries:
        if isinstance(e, InputFailure):
            results.append(Result(name=e.name, message=_error_text(e.name, e.message)))
            console.print(f"mouseemo: error: {for_user(results[-1].message)}", err=True)
        elif not opts.overwrite and is_finished(out_dir, e.stem, opts):
            console.print(
                for_user(f"skip {e.video}: {out_dir / e.stem}.json exists (set `overwrite` to redo it)")
            )
            results.append(Result(name=str(e.video), stem=e.stem, status="skipped"))
        else:
            res = Result(name=str(e.video), stem=e.stem)
            results.append(res)
            todo.append((e, res))
    if todo:
        _process(todo, scorer, out_dir, opts, workers, console)
    return results


def _process(todo, scorer, out_dir: Path, opts, workers: int, console: _Console) -> None:
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
            console.print(f"mouseemo: error: {for_user(res.message)}", err=True)
        except Exception as err:  # noqa: BLE001 - one broken video must not stop the batch
            res.message = (
                _error_text(str(entry.video), err) + " (unexpected; MOUSEEMO_DEBUG=1 shows the traceback)"
            )
            console.print(f"mouseemo: error: {type(err).__name__}: {for_user(res.message)}", err=True)
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


__all__ = ["Result", "check_stems", "format_table", "predict_entries", "predict_inputs"]
