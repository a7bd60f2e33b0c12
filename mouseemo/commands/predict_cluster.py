"""``mouseemo predict`` over many jobs: ``--shard K/N``, ``--executor local|slurm --jobs N``, ``--merge-only``.

* ``--shard K/N`` predicts shard ``K`` (from 0) of the videos the inputs stand for
  (:func:`mouseemo.inference.shards.split_shards`), e.g. one task of a SLURM array; nothing else.
* ``--executor slurm|local --jobs N`` splits the videos that are not finished over ``N`` jobs and
  submits them with submitit (logs in ``<out>/.submitit``), waits for them, then merges every video's
  summary into ``<out>/summary.csv`` and ``summary.json``, listing failed and missing videos with the
  reason. Ctrl-C cancels the jobs. A rerun does only what is missing.
* ``--merge-only`` writes that summary from what ``--out`` holds (after a SLURM array of ``--shard``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

from mouseemo.errors import ConfigError, for_user
from mouseemo.inference.batch import check_stems, format_table, predict_entries
from mouseemo.inference.inputs import VideoInput, expand_inputs
from mouseemo.inference.pipeline import PredictOptions, is_finished
from mouseemo.inference.shards import (
    ShardJob,
    check_summary_free,
    merge_summaries,
    parse_shard,
    shard_entries,
    split_shards,
    summary_paths,
    write_record,
)

#: submitit's folder (pickled jobs, logs), inside the output folder.
SUBMITIT_DIR = ".submitit"
_RUNNING = "running.json"
_SLURM_ONLY = ("partition", "mem_gb", "slurm_array_parallelism", "slurm_extra")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The many-job options of ``mouseemo predict``."""
    g = p.add_argument_group("many jobs (see docs/guides/cluster.md)")
    g.add_argument(
        "--shard",
        metavar="K/N",
        help="predict only shard K of N (K from 0, e.g. $SLURM_ARRAY_TASK_ID/64 with --array=0-63); "
        "the split depends only on the videos (sizes balanced), so N such runs cover every video once",
    )
    g.add_argument(
        "--executor",
        choices=("local", "slurm"),
        help="split the unfinished videos over --jobs jobs submitted with submitit (local: processes on "
        "this machine; slurm: a job array), wait, and merge the summaries into <out>/summary.csv/.json",
    )
    g.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="with --executor: number of jobs (local default: cores / --cpus-per-task)",
    )
    g.add_argument(
        "--cpus-per-task",
        type=int,
        metavar="C",
        help="with --executor: cores per job, also its torch/OpenCV threads (default: local cores / --jobs, slurm 2)",
    )
    g.add_argument(
        "--gpus-per-node",
        type=int,
        metavar="G",
        help="with --executor: GPUs per job (default: slurm 0, local the GPUs this machine shows)",
    )
    g.add_argument(
        "--time-min",
        type=int,
        metavar="MIN",
        help="with --executor: time limit per job in minutes (default: slurm 240, local none)",
    )
    g.add_argument(
        "--mem-gb", type=float, metavar="GB", help="with --executor slurm: memory per job (default 16)"
    )
    g.add_argument("--partition", metavar="NAME", help="with --executor slurm: the partition")
    g.add_argument(
        "--slurm-array-parallelism",
        type=int,
        metavar="M",
        help="with --executor slurm: jobs running at once (default 256)",
    )
    g.add_argument(
        "--slurm-extra",
        action="append",
        metavar="KEY=VALUE",
        help="with --executor slurm: another sbatch option, e.g. account=lab or qos=long (repeatable)",
    )
    g.add_argument(
        "--merge-only",
        action="store_true",
        help="predict nothing: merge the summaries in --out into summary.csv/.json (after --shard jobs)",
    )


def wants_many(args: argparse.Namespace) -> bool:
    """Whether ``args`` asks for one of the many-job modes."""
    return bool(args.shard or args.executor or args.merge_only)


def check_arguments(args: argparse.Namespace) -> None:
    """ConfigError for many-job flags that do not go together."""
    modes = [
        f
        for f, on in (
            ("--shard", args.shard),
            ("--executor", args.executor),
            ("--merge-only", args.merge_only),
        )
        if on
    ]
    if len(modes) > 1:
        raise ConfigError(f"{' and '.join(modes)} do not go together: give one")
    if args.shard:
        parse_shard(args.shard)
    for name in ("jobs", "cpus_per_task", "time_min", "slurm_array_parallelism"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1; got {value}")
    if args.gpus_per_node is not None and args.gpus_per_node < 0:
        raise ConfigError(f"--gpus-per-node must be >= 0; got {args.gpus_per_node}")
    if args.mem_gb is not None and not args.mem_gb > 0:
        raise ConfigError(f"--mem-gb must be > 0; got {args.mem_gb}")
    given = [
        n for n in ("jobs", "cpus_per_task", "gpus_per_node", "time_min", *_SLURM_ONLY) if getattr(args, n)
    ]
    if given and not args.executor:
        raise ConfigError(f"--{given[0].replace('_', '-')} needs --executor local or slurm")
    slurm = [n for n in _SLURM_ONLY if getattr(args, n)]
    if slurm and args.executor == "local":
        raise ConfigError(f"--{slurm[0].replace('_', '-')} applies to --executor slurm")
    if args.executor == "slurm" and args.jobs is None:
        raise ConfigError("--executor slurm needs --jobs N (how many jobs share the videos)")
    for item in args.slurm_extra or []:
        if "=" not in item or not item.split("=", 1)[0]:
            raise ConfigError(f"--slurm-extra takes KEY=VALUE (an sbatch option without --); got {item!r}")


def run_many(args: argparse.Namespace, model: dict, opts: PredictOptions) -> int:
    """Run the many-job mode ``args`` asks for; the exit code."""
    out_dir = Path(args.out)
    entries = expand_inputs(args.inputs, args.events, exclude=out_dir)
    check_stems(entries, out_dir)
    if args.shard:
        return _run_shard(args, entries, model, opts)
    check_summary_free(entries, out_dir, args.overwrite)
    reasons: dict[str, str] = {}
    if args.executor:
        reasons = _submit_and_wait(args, entries, model, opts)
    rows = merge_summaries(entries, out_dir, opts, reasons)
    if not args.quiet:
        for r in rows:
            if r["status"] != "done":
                print(f"{r['status']}: {r['video']}: {for_user(r['message'])}")
        counts = {s: sum(r["status"] == s for r in rows) for s in ("done", "failed", "missing")}
        csv_path, _ = summary_paths(out_dir)
        print(f"{counts['done']} done, {counts['failed']} failed, {counts['missing']} missing -> {csv_path}")
    return 0 if all(r["status"] == "done" for r in rows) else 2


def _run_shard(args, entries, model: dict, opts: PredictOptions) -> int:
    from mouseemo.inference.scorers import load_scorer
    from mouseemo.utils.device import pick_device

    k, n = parse_shard(args.shard)
    mine = shard_entries(entries, k, n)
    scorer = load_scorer(device=pick_device(args.device), **model)
    results = predict_entries(mine, scorer, args.out, opts, workers=args.workers, quiet=args.quiet)
    write_record(args.out, f"shard-{k}-of-{n}", results)
    if not args.quiet:
        print(format_table(results, Path(args.out)))
    return 2 if any(r.status == "failed" for r in results) else 0


def _local_gpus() -> tuple[int, tuple[int, ...]]:
    import torch

    seen = os.environ.get("CUDA_VISIBLE_DEVICES")
    if seen is not None and all(x.strip().isdigit() for x in seen.split(",") if x.strip()):
        ids = tuple(int(x) for x in seen.split(",") if x.strip())
        return len(ids), ids
    return torch.cuda.device_count(), ()


def _executor(args, folder: Path, num_jobs: int, threads: int):
    import submitit

    if args.executor == "local":
        ex = submitit.LocalExecutor(folder=folder / "%j")
        gpus, visible = (args.gpus_per_node, ()) if args.gpus_per_node is not None else _local_gpus()
        ex.update_parameters(
            timeout_min=args.time_min or 7 * 24 * 60, gpus_per_node=gpus, visible_gpus=visible
        )
        return ex
    if shutil.which("sbatch") is None:
        raise ConfigError(
            "--executor slurm: sbatch not found (run it on a SLURM login node; on a workstation use --executor local)"
        )
    ex = submitit.SlurmExecutor(folder=folder / "%A_%a")
    extra = dict(item.split("=", 1) for item in args.slurm_extra or [])
    params = dict(
        job_name="mouseemo-predict",
        time=args.time_min or 240,
        mem=f"{args.mem_gb or 16:g}GB",
        cpus_per_task=threads,
        gpus_per_node=args.gpus_per_node or 0,
        array_parallelism=min(args.slurm_array_parallelism or 256, num_jobs),
        additional_parameters=extra,
    )
    if args.partition:
        params["partition"] = args.partition
    ex.update_parameters(**params)
    return ex


def _check_not_running(folder: Path, executor: str) -> None:
    """ConfigError when jobs that an earlier run submitted into this folder still run."""
    path = folder / _RUNNING
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        ids = [str(i) for i in record["jobs"]]
    except (OSError, ValueError, KeyError, TypeError):
        return
    alive = [i for i in ids if _alive(folder, record.get("executor"), i)]
    if alive:
        how = (
            f"scancel {' '.join(sorted({i.split('_')[0] for i in alive}))}"
            if record.get("executor") == "slurm"
            else f"kill {' '.join(alive)}"
        )
        raise ConfigError(
            f"{len(alive)} job(s) of an earlier run still write into {folder.parent}: wait for them, or stop them ({how})"
        )
    path.unlink(missing_ok=True)


def _alive(folder: Path, executor: str | None, job_id: str) -> bool:
    if executor == "local":
        try:
            os.kill(int(job_id), 0)
        except (ProcessLookupError, ValueError):
            return False
        except PermissionError:
            return True
        return True
    import submitit

    return not submitit.SlurmJob(folder=folder / "%A_%a", job_id=job_id).done()


def _submit_and_wait(args, entries, model: dict, opts: PredictOptions) -> dict[str, str]:
    """Submit the unfinished videos as jobs, wait for them; ``{stem: reason}`` for the videos of jobs that failed."""
    out_dir = Path(args.out)
    videos = [e for e in entries if isinstance(e, VideoInput)]
    todo = [e for e in videos if opts.overwrite or not is_finished(out_dir, e.stem, opts)]
    if not todo:
        return {}
    folder = out_dir / SUBMITIT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    _check_not_running(folder, args.executor)
    cpus = os.cpu_count() or 1
    num_jobs = args.jobs or max(1, cpus // (args.cpus_per_task or 1))
    threads = args.cpus_per_task or (2 if args.executor == "slurm" else max(1, cpus // num_jobs))
    groups = [g for g in split_shards([e.video for e in todo], min(num_jobs, len(todo))) if g]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    jobs_opts = replace(opts, cancel=None)
    fns = [
        ShardJob(
            [todo[i] for i in g],
            model,
            args.device,
            str(out_dir),
            jobs_opts,
            tag=f"{stamp}-job{j:03d}-of-{len(groups)}",
            workers=args.workers,
            threads=threads,
        )  # fmt: skip
        for j, g in enumerate(groups)
    ]
    ex = _executor(args, folder, len(fns), threads)
    jobs = ex.submit_array(fns)
    (folder / _RUNNING).write_text(json.dumps({"executor": args.executor, "jobs": [j.job_id for j in jobs]}))
    if not args.quiet:
        print(
            f"submitted {len(jobs)} {args.executor} job(s) for {len(todo)} video(s); logs in {folder}",
            flush=True,
        )
    try:
        _wait(jobs, args.quiet, 0.2 if args.executor == "local" else 5.0)
    except KeyboardInterrupt:
        _cancel(jobs, args.executor)
        raise
    (folder / _RUNNING).unlink(missing_ok=True)
    reasons: dict[str, str] = {}
    for fn, job in zip(fns, jobs):
        try:
            job.result()
        except Exception as err:  # noqa: BLE001 - a job that died or raised: its videos are listed
            first = next((line for line in str(err).splitlines() if line.strip()), type(err).__name__)
            why = f"its job {job.job_id} ended without finishing ({job.state}: {first[:200]}); log: {job.paths.stderr}"
            reasons.update({e.stem: why for e in fn.entries if isinstance(e, VideoInput)})
    return reasons


def _wait(jobs, quiet: bool, poll_s: float) -> None:
    finished = 0
    while True:
        done = sum(j.done() for j in jobs)
        if done != finished and not quiet:
            print(f"{done} of {len(jobs)} job(s) ended", flush=True)
        finished = done
        if done == len(jobs):
            return
        time.sleep(poll_s)


def _cancel(jobs, executor: str) -> None:
    """Cancel ``jobs`` (Ctrl-C on the submitting command); say how if that fails."""
    failed = []
    for j in jobs:
        try:
            j.cancel(check=False)
        except Exception:  # noqa: BLE001 - e.g. scancel missing: say how to cancel by hand
            failed.append(str(j.job_id))
    if executor == "local":
        end = time.monotonic() + 10
        while time.monotonic() < end and not all(j.done() for j in jobs):
            time.sleep(0.1)
    if failed:
        print(
            f"mouseemo: could not cancel job(s) {' '.join(failed)}: run scancel {' '.join(failed)}",
            file=sys.stderr,
        )
    else:
        print(
            f"mouseemo: cancelled {len(jobs)} job(s); finished videos are kept, the same command does the rest",
            file=sys.stderr,
        )


__all__ = ["add_arguments", "check_arguments", "run_many", "wants_many"]
