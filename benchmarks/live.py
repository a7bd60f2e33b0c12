"""``mouseemo live`` latency: capture -> score per frame, and dropped frames, for two models.

A synthetic 240 x 320 face video (``mouseemo.testing.write_session``, ``--seconds`` at 30 fps) is fed
to :class:`~mouseemo.inference.live.LiveSession` through
:class:`~mouseemo.inference.live.VideoFileSource`, played at 30 fps and as fast as it decodes, with
the default queue of one frame (the oldest dropped). Models, cached in ``--cache``:

* prototypes built from that video with the paper's HOG (``build_from_videos``);
* the default model, ``motion_cnn`` (3-frame clips, median session reference, 72x96 input), trained
  for one epoch on a small synthetic dataset (``_harness.trained_checkpoint``), or ``--ckpt``; its
  session reference is given (the video's first 2 s, as a reference recorded before the session:
  ``mouseemo live --reference``) or taken from a 2-s warm-up of the feed (its frames are scored in
  one go when it ends, not timed; frames arriving meanwhile can be dropped).

The CNN runs once per torch thread count of ``--threads`` on the CPU (intra-op threads for one
frame at a time; the capture thread decodes beside them). Rows per device (CPU, and CUDA when
available). ``median`` / ``p99``: capture-to-score latency in ms of the scored frames; ``dropped``:
frames dropped from the queue, in % of captured; ``score fps``: frames scored per second of scoring
time. Goals: p99 <= 10 ms with nothing dropped at 30 fps, on a 2-core CPU and on a GPU. The load
average at the end is printed (other processes on a shared machine lengthen the tail).

    OMP_NUM_THREADS=1 python benchmarks/live.py --seconds 10
    python benchmarks/live.py --ckpt runs/best.ckpt --threads 1
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import _harness
import torch

from mouseemo.data.video import VideoReader
from mouseemo.inference.live import LiveOptions, LiveSession, VideoFileSource
from mouseemo.inference.prototype_scorer import PrototypeScorer
from mouseemo.inference.scorers import CheckpointScorer
from mouseemo.testing import write_session

SIZE = (240, 320)
FPS = 30.0
REFERENCE_S = 2.0  # warm-up of the CNN's session reference; its frames are not in the latencies


def make_inputs(cache: Path, seconds: float, ckpt: Path | None) -> tuple[Path, Path, Path]:
    from mouseemo.inference.inputs import resolve_inputs
    from mouseemo.inference.prototypes import build_from_videos

    cache.mkdir(parents=True, exist_ok=True)
    n = int(seconds * FPS)
    session = cache / "data" / "m01" / f"s{n}"
    if not (session / "face.mp4").is_file():
        write_session(cache / "data", session=f"s{n}", num_frames=n, fps=FPS, size=SIZE)
    protos = cache / f"protos_{n}.npz"
    if not protos.is_file():
        build_from_videos(resolve_inputs([str(session)], None, need_events=True)).save(protos)
    ckpt = ckpt or _harness.trained_checkpoint(cache, "motion_cnn")
    return session / "face.mp4", protos, ckpt


def run_one(video: Path, scorer, realtime: bool, reference=None) -> dict:
    """One live session over ``video``; the CNN's session reference from ``reference`` frames, else
    from a warm-up of the first :data:`REFERENCE_S` seconds."""
    source = VideoFileSource(video, realtime=realtime)
    opts = LiveOptions(status_s=None, stall_timeout_s=30, reference_s=REFERENCE_S, reference=reference)
    return LiveSession(source, scorer, opts).run()


def fmt(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0, help="video length (default 10)")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "mouseemo-bench-live")
    p.add_argument(
        "--ckpt", type=Path, default=None, help="a trained checkpoint (default: train motion_cnn briefly)"
    )
    p.add_argument("--threads", default="1,2", help="torch CPU thread counts for the CNN rows (default 1,2)")
    _harness.add_markdown_argument(p)
    args = p.parse_args()
    threads = [int(t) for t in args.threads.split(",") if t.strip()]
    report = _harness.Report(args.markdown, seed=0)  # write_session's seed
    video, protos, ckpt = make_inputs(args.cache, args.seconds, args.ckpt)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    report.line(
        f"{os.cpu_count()} CPU cores, torch {torch.__version__}; {SIZE[1]}x{SIZE[0]} frames, {args.seconds:g} s at "
        f"{FPS:g} fps; CNN: {ckpt.name}\n"
    )
    report.table(
        ["model", "device", "feed", "captured", "scored", "dropped", "median ms", "p99 ms", "score fps"],
        align=["---"] * 3 + ["---:"] * 6,
    )
    default_threads = torch.get_num_threads()
    with VideoReader(video, timestamps=None) as vr:
        first = vr.read(0, int(REFERENCE_S * FPS))  # a reference recorded before the session
    feeds = (("30 fps", True), ("as fast as possible", False))
    for device in devices:
        cnn = CheckpointScorer.load(ckpt, device)
        h, w = cnn.resize or SIZE
        name = f"{ckpt.stem} ({h}x{w} input)"
        runs = [
            ("prototypes (HOG)", PrototypeScorer.load(protos, device), default_threads, feed, None)
            for feed in feeds
        ]
        for t in threads if device == "cpu" else [default_threads]:
            runs += [(f"{name}, {t} threads, reference given", cnn, t, feed, first) for feed in feeds]
            runs.append((f"{name}, {t} threads, {REFERENCE_S:g} s warm-up", cnn, t, feeds[0], None))
        for label, scorer, t, (feed, realtime), ref in runs:
            torch.set_num_threads(t)
            s = run_one(video, scorer, realtime, ref)
            f, lat = s["frames"], s["latency_ms"]
            report.row([label, device, feed, f["captured"], f["scored"], f"{100 * f['dropped_fraction']:.1f}%",
                        fmt(lat["median"], ".1f"), fmt(lat["p99"], ".1f"), fmt(s["scoring_fps"], ".0f")])  # fmt: skip
        torch.set_num_threads(default_threads)
    report.line()
    report.line("goal: p99 <= 10 ms with 0% dropped at 30 fps (CPU: 2 cores)")
    if hasattr(os, "getloadavg"):
        load = os.getloadavg()
        report.line(
            f"load average at the end (1/5/15 min): {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, {os.cpu_count()} cores"
        )
    report.write()


if __name__ == "__main__":
    main()
