"""``mouseemo predict`` over many jobs: which videos each job does, the job itself, and the merged summary.

* :func:`parse_shard` / :func:`split_shards` / :func:`shard_entries`: ``--shard K/N`` (``K`` counts
  from 0, as ``$SLURM_ARRAY_TASK_ID`` with ``--array=0-<N-1>``). The split depends only on the
  videos (their paths and sizes), not on the order of the arguments: videos go, largest first, to the
  job with the fewest bytes so far (ties: the fewest videos, then the lowest ``K``), so jobs get
  about equal work. Every shard computes the same split, so the shards are disjoint and together
  hold every video. An input that yields no video (:class:`~mouseemo.inference.inputs.InputFailure`)
  belongs to shard 0, so that it is reported once.
* :class:`ShardJob`: what one job runs (a picklable callable, for submitit or a plain call): it
  loads the model, predicts its videos with the usual rules (finished videos skipped, temporary
  files renamed at the end, so a job that is killed leaves only complete outputs), and writes a
  record of what happened to each video under ``<out>/.mouseemo-jobs/``.
* :func:`merge_summaries`: every expected video's ``<stem>.json`` (or the reason it has none) in one
  ``<out>/summary.csv`` and ``<out>/summary.json``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from mouseemo import __version__
from mouseemo.errors import ConfigError
from mouseemo.inference.batch import Result, format_table, predict_entries
from mouseemo.inference.inputs import InputFailure, VideoInput
from mouseemo.inference.pipeline import PredictOptions, is_finished
from mouseemo.utils.io import dumps_json, write_json_atomic, write_text_atomic

#: Where jobs leave their records (one JSON per job run), inside the output folder.
RECORDS_DIR = ".mouseemo-jobs"
#: The merged summary's file names, inside the output folder.
SUMMARY_STEM = "summary"
_SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)``, ``K`` counting from 0.

    Raises:
        ConfigError: not two integers with ``0 <= K < N``.

    Example:
        >>> parse_shard("3/64")
        (3, 64)
    """
    m = _SHARD.fullmatch(str(text))
    k, n = (int(m.group(1)), int(m.group(2))) if m else (-1, 0)
    if not m or n < 1 or k >= n:
        raise ConfigError(
            f"`shard` must be K/N with 0 <= K < N (K counts from 0, like $SLURM_ARRAY_TASK_ID in an "
            f"array 0 to N-1); got {text!r}"
        )
    return k, n


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def split_shards(
    videos: Sequence[str | os.PathLike], num_shards: int, sizes: Sequence[int] | None = None
) -> list[list[int]]:
    """Indices into ``videos`` for each of ``num_shards`` shards (each list ascending).

    Largest first (ties by path), each video goes to the shard with the fewest bytes so far (ties:
    the fewest videos, then the lowest index). The result does not depend on the order of
    ``videos``, only on their paths and ``sizes`` (default: the files' sizes, 0 for a missing file).

    Example:
        >>> split_shards(["a", "b", "c"], 2, sizes=[1, 1, 1])
        [[0, 2], [1]]
    """
    if num_shards < 1:
        raise ConfigError(f"`jobs` must be >= 1; got {num_shards}")
    paths = [str(v) for v in videos]
    sizes = [_size(Path(p)) for p in paths] if sizes is None else list(sizes)
    order = sorted(range(len(paths)), key=lambda i: (-sizes[i], paths[i], i))
    load = [(0, 0, k) for k in range(num_shards)]
    shards: list[list[int]] = [[] for _ in range(num_shards)]
    for i in order:
        b, c, k = min(load)
        shards[k].append(i)
        load[k] = (b + sizes[i], c + 1, k)
    return [sorted(s) for s in shards]


def shard_entries(
    entries: Sequence[VideoInput | InputFailure], shard: int, num_shards: int
) -> list[VideoInput | InputFailure]:
    """The entries of shard ``shard`` of ``num_shards`` (see :func:`split_shards`); input
    failures go to shard 0."""
    videos = [e for e in entries if isinstance(e, VideoInput)]
    mine = {id(videos[i]) for i in split_shards([e.video for e in videos], num_shards)[shard]}
    return [e for e in entries if id(e) in mine or (isinstance(e, InputFailure) and shard == 0)]


@dataclass
class ShardJob:
    """One job of a many-job ``predict``: a picklable callable (submitit runs it on a node).

    Attributes:
        entries: its videos (and input failures, reported in its record).
        model: keyword arguments of :func:`~mouseemo.inference.scorers.load_scorer` except ``device``.
        device: ``auto``, ``cpu``, ``cuda``... (:func:`~mouseemo.utils.device.pick_device`), chosen on the node.
        out_dir: the output folder.
        opts: how each video runs (its ``cancel`` event is made in the job).
        tag: names the job's record (``<out>/.mouseemo-jobs/<tag>.json``).
        workers: videos at a time within the job.
        threads: CPU threads of torch and OpenCV in the job (its share of cores).
    """

    entries: list
    model: dict
    device: str
    out_dir: str
    opts: PredictOptions
    tag: str
    workers: int = 1
    threads: int | None = None
    quiet: bool = False

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["opts"] = replace(self.opts, cancel=None)  # an Event does not pickle
        return state

    def __call__(self) -> list[dict]:
        """Predict the job's videos; returns one record per video (also written to its record file)."""
        import cv2
        import torch

        from mouseemo.inference.scorers import load_scorer
        from mouseemo.utils.device import pick_device

        if self.threads:
            torch.set_num_threads(self.threads)
            cv2.setNumThreads(self.threads)
        opts = replace(self.opts, cancel=threading.Event())
        scorer = load_scorer(device=pick_device(self.device), **self.model)
        results = predict_entries(self.entries, scorer, self.out_dir, opts, self.workers, quiet=self.quiet)
        if not self.quiet:
            print(format_table(results, Path(self.out_dir)), flush=True)
        return write_record(self.out_dir, self.tag, results)


def write_record(out_dir: str | Path, tag: str, results: Sequence[Result]) -> list[dict]:
    """Write what happened to each video of one job to ``<out>/.mouseemo-jobs/<tag>.json``."""
    now = time.time()
    rows = [
        {"name": r.name, "stem": r.stem, "status": r.status, "message": r.message, "time": now}
        for r in results
    ]
    write_json_atomic(
        Path(out_dir) / RECORDS_DIR / f"{tag}.json", {"mouseemo_version": __version__, "videos": rows}
    )
    return rows


def read_records(out_dir: str | Path) -> dict[str, dict]:
    """The latest record of each video (by stem, or name for input failures) that jobs wrote."""
    latest: dict[str, dict] = {}
    folder = Path(out_dir) / RECORDS_DIR
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))["videos"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        for row in rows if isinstance(rows, list) else []:
            if isinstance(row, dict):
                key = row.get("stem") or row.get("name", "")
                if key not in latest or row.get("time", 0) >= latest[key].get("time", 0):
                    latest[key] = row
    return latest


def summary_paths(out_dir: str | Path) -> tuple[Path, Path]:
    """``<out>/summary.csv`` and ``<out>/summary.json``."""
    return Path(out_dir) / f"{SUMMARY_STEM}.csv", Path(out_dir) / f"{SUMMARY_STEM}.json"


_HEAD = ["stem", "video", "status", "frames", "fps", "duration_s", "truncated", "warnings"]


def check_summary_free(
    entries: Sequence[VideoInput | InputFailure], out_dir: str | Path, overwrite: bool
) -> None:
    """ConfigError when the merged summary would replace a video's outputs, or files mouseemo did
    not write (unless ``overwrite``)."""
    for e in entries:
        if isinstance(e, VideoInput) and e.stem == SUMMARY_STEM:
            raise ConfigError(
                f"{e.video} would write {Path(out_dir) / SUMMARY_STEM}.*, where the merged summary goes; "
                "rename the video or predict it separately"
            )
    csv_path, json_path = summary_paths(out_dir)
    if overwrite:
        return
    for path, ours in ((csv_path, _ours_csv), (json_path, _ours_json)):
        if (path.exists() or path.is_symlink()) and (path.is_symlink() or not ours(path)):
            raise ConfigError(
                f"refusing to replace {path}: mouseemo did not write it (set `overwrite` to replace it)"
            )


def _ours_csv(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.readline().startswith(",".join(_HEAD))
    except (OSError, UnicodeDecodeError):
        return False


def _ours_json(path: Path) -> bool:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return (
        isinstance(record, dict) and record.get("kind") == "predict-summary" and "mouseemo_version" in record
    )


def merge_summaries(
    entries: Sequence[VideoInput | InputFailure],
    out_dir: str | Path,
    opts: PredictOptions,
    reasons: Mapping[str, str] | None = None,
) -> list[dict]:
    """One row per expected video, from its ``<stem>.json``, written to ``<out>/summary.csv`` and
    ``<out>/summary.json``; returns the rows.

    A video is ``done`` when all its outputs are complete, ``failed`` when its input yielded no video
    or its job reported an error for it, and ``missing`` otherwise, with the reason: ``reasons[stem]``
    (e.g. that its job was killed), or that no job finished it.
    """
    out_dir = Path(out_dir)
    records = read_records(out_dir)
    reasons = dict(reasons or {})
    rows: list[dict] = []
    names: list[str] = []
    for e in entries:
        if isinstance(e, InputFailure):
            rows.append({"stem": "", "video": e.name, "status": "failed", "message": e.message})
            continue
        row: dict = {"stem": e.stem, "video": str(e.video)}
        summary = _summary(out_dir / f"{e.stem}.json") if is_finished(out_dir, e.stem, opts) else None
        record = records.get(e.stem, {})
        if summary is not None:
            fractions = summary.get("fraction_per_label", {})
            names += [n for n in fractions if n not in names]
            row.update(
                status="done",
                frames=summary.get("frames"),
                fps=summary.get("fps"),
                duration_s=summary.get("duration_s"),
                truncated=bool(summary.get("decoding", {}).get("truncated", False)),
                warnings=len(summary.get("warnings", [])),
                fraction_per_label=fractions,
                message="",
            )
        elif (
            record.get("status") == "failed"
            and record.get("message") not in ("", "interrupted")
            and e.stem not in reasons
        ):
            row.update(status="failed", message=record["message"])
        else:
            why = reasons.get(e.stem) or (
                "interrupted" if record.get("message") == "interrupted" else "no job has finished it yet"
            )
            row.update(status="missing", message=why)
        rows.append(row)
    _write_summary(out_dir, rows, names)
    return rows


def _summary(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _write_summary(out_dir: Path, rows: list[dict], names: list[str]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*_HEAD, *(f"fraction_{n}" for n in names), "message"])
    for r in rows:
        fr = r.get("fraction_per_label", {})
        cells = [r.get(k, "") for k in _HEAD] + [fr.get(n, "") for n in names] + [r.get("message", "")]
        writer.writerow(["" if c is None else c for c in cells])
    csv_path, json_path = summary_paths(out_dir)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("done", "failed", "missing")}
    write_text_atomic(csv_path, buf.getvalue())
    write_text_atomic(
        json_path,
        dumps_json(
            {"kind": "predict-summary", "mouseemo_version": __version__, "counts": counts, "videos": rows}
        ),
    )


__all__ = [
    "RECORDS_DIR",
    "ShardJob",
    "check_summary_free",
    "merge_summaries",
    "parse_shard",
    "read_records",
    "shard_entries",
    "split_shards",
    "summary_paths",
    "write_record",
]
