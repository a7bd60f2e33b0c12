"""``mouseemo live`` latency: capture -> score per frame, and dropped frames, for two models.

A synthetic 240 x 320 face video (``mouseemo.testing.write_session``, ``--seconds`` at 30 fps) is fed
to :class:`~mouseemo.inference.live.LiveSession` through
:class:`~mouseemo.inference.live.VideoFileSource`, played at 30 fps and as fast as it decodes, with
the default queue of one frame (the oldest dropped). Models, cached in ``--cache``:

* prototypes built from that video with the paper's HOG (``build_from_videos``);
* an untrained ``model=cnn`` checkpoint (speed does not depend on the weights; not the default
  ``motion_cnn``).

Rows per device (CPU, and CUDA when available). ``median`` / ``p99``: capture-to-score latency in
ms of the scored frames; ``dropped``: frames dropped from the queue, in % of captured; ``score fps``:
frames scored per second of scoring time. Goals: p99 <= 50 ms on a 2-core CPU, <= 10 ms on a GPU
(30 fps feed).

    OMP_NUM_THREADS=1 python benchmarks/live.py --seconds 10
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import _harness
import torch

from mouseemo.inference.live import LiveOptions, LiveSession, VideoFileSource
from mouseemo.inference.prototype_scorer import PrototypeScorer
from mouseemo.inference.scorers import CheckpointScorer
from mouseemo.testing import untrained_checkpoint, write_session

SIZE = (240, 320)
FPS = 30.0


def make_inputs(cache: Path, seconds: float) -> tuple[Path, Path, Path]:
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
    ckpt = untrained_checkpoint(cache / "cnn_untrained.ckpt", "cnn")
    return session / "face.mp4", protos, ckpt


def run_one(video: Path, scorer, realtime: bool) -> dict:
    source = VideoFileSource(video, realtime=realtime)
    return LiveSession(source, scorer, LiveOptions(status_s=None, stall_timeout_s=30)).run()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0, help="video length (default 10)")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "mouseemo-bench-live")
    _harness.add_markdown_argument(p)
    args = p.parse_args()
    report = _harness.Report(args.markdown, seed=0)  # write_session's seed
    video, protos, ckpt = make_inputs(args.cache, args.seconds)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    report.line(
        f"torch threads {torch.get_num_threads()}; {SIZE[1]}x{SIZE[0]} frames, {args.seconds:g} s at {FPS:g} fps\n"
    )
    report.table(
        ["model", "device", "feed", "captured", "scored", "dropped", "median ms", "p99 ms", "score fps"],
        align=["---"] * 3 + ["---:"] * 6,
    )
    for device in devices:
        models = {
            "prototypes (HOG)": PrototypeScorer.load(protos, device),
            "cnn, untrained (72x96 input)": CheckpointScorer.load(ckpt, device),
        }
        for name, scorer in models.items():
            for feed, realtime in (("30 fps", True), ("as fast as possible", False)):
                s = run_one(video, scorer, realtime)
                f, lat = s["frames"], s["latency_ms"]
                report.row([name, device, feed, f["captured"], f["scored"], f"{100 * f['dropped_fraction']:.1f}%",
                            f"{lat['median']:.1f}", f"{lat['p99']:.1f}", f"{s['scoring_fps'] or float('nan'):.0f}"])  # fmt: skip
    report.write()


if __name__ == "__main__":
    main()
