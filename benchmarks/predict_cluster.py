"""``mouseemo predict`` over many jobs: one job against ``--executor local --jobs N`` on the same videos.

Eight copies of a synthetic video (``mouseemo synth``'s face, one minute at ``--size``, looped to
``--seconds`` and re-encoded as in ``benchmarks/predict.py``; cached in ``--cache``) are predicted
with prototypes twice, each in a fresh process timed from launch to exit:

* ``one job``: ``mouseemo predict VIDEOS --prototypes P --out A`` with one thread
  (``OMP_NUM_THREADS=1``);
* ``N jobs``: the same with ``--executor local --jobs N --cpus-per-task 1`` (submitit processes,
  one thread each, then the merged summary).

It checks that every per-video CSV is byte-identical between the two, and prints both times and
their ratio (N jobs / one job; the goal is <= 0.6 for 2 jobs on 2 cores). On a shared machine,
the load average before and after is printed too.

    python benchmarks/predict_cluster.py                    # 8 videos of 8 minutes, 2 jobs
    python benchmarks/predict_cluster.py --seconds 60 --jobs 2
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _harness
from predict import make_video

REPO = _harness.REPO


def make_videos(
    cache: Path, seconds: float, size: tuple[int, int], fps: float, count: int
) -> tuple[Path, Path]:
    """``count`` copies of a ``seconds``-long synthetic face video (in one folder) and prototypes."""
    from mouseemo.inference.inputs import resolve_inputs
    from mouseemo.inference.prototypes import build_from_videos

    h, w = size
    video, session = make_video(cache, seconds / 60, size, fps)  # the looped face of benchmarks/predict.py
    protos = cache / f"protos_{h}x{w}.npz"
    if not protos.is_file():
        build_from_videos(resolve_inputs([str(session)], None, need_events=True)).save(protos)
    folder = cache / f"videos_{h}x{w}_{seconds:g}s_{count}"
    if not folder.is_dir():
        tmp = Path(tempfile.mkdtemp(dir=cache))
        for k in range(count):
            shutil.copyfile(video, tmp / f"face{k:02d}.mp4")
        os.replace(tmp, folder)
    return folder, protos


def timed(args: list[str]) -> float:
    """Wall seconds of ``python -m mouseemo predict ARGS`` in a fresh process with one thread."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mouseemo", "predict", *args], cwd=REPO, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"mouseemo predict {' '.join(args)} failed with exit code {proc.returncode}")
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--seconds", type=float, default=480.0, help="length of each video in seconds (default 480)"
    )
    p.add_argument("--videos", type=int, default=8, help="number of videos (default 8)")
    p.add_argument("--jobs", type=int, default=2, help="jobs of the many-job run (default 2)")
    p.add_argument("--size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"), help="frame size")
    p.add_argument("--fps", type=float, default=20.0, help="frame rate of the videos (default 20)")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "mouseemo_bench_cluster")
    args = p.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    videos, protos = make_videos(args.cache, args.seconds, tuple(args.size), args.fps, args.videos)
    work = Path(tempfile.mkdtemp(prefix="mouseemo_cluster_"))
    try:
        base = [str(videos), "--prototypes", str(protos), "--quiet", "--no-plot"]
        load0 = os.getloadavg()
        one = timed([*base, "--out", str(work / "one")])
        many = timed(
            [
                *base,
                "--out",
                str(work / "many"),
                "--executor",
                "local",
                "--jobs",
                str(args.jobs),
                "--cpus-per-task",
                "1",
            ]
        )
        load1 = os.getloadavg()
        csvs = sorted(p.name for p in (work / "one").glob("*.csv"))
        same = len(csvs) == args.videos and all(
            filecmp.cmp(work / "one" / n, work / "many" / n, shallow=False) for n in csvs
        )
        print(
            f"{args.videos} videos of {args.seconds:g} s at {args.size[0]}x{args.size[1]}, {os.cpu_count()} cores"
        )
        print(f"load average (1 min) before {load0[0]:.1f}, after {load1[0]:.1f}")
        print(f"one job:   {one:.1f} s")
        print(f"{args.jobs} jobs:    {many:.1f} s")
        print(f"ratio:     {many / one:.2f}  (goal <= 0.6 for 2 jobs on 2 cores)")
        print(f"outputs identical: {'yes' if same else 'NO'}")
        if not same:
            raise SystemExit(1)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
