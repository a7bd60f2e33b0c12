"""``mouseemo live`` latency: capture -> score per frame, and dropped frames, for two models.

A synthetic 240 x 320 face video (``tests.helpers.label_frames``, ``--seconds`` at 30 fps) is fed
to :class:`~mouseemo.inference.live.LiveSession` through
:class:`~mouseemo.inference.live.VideoFileSource`, played at 30 fps and as fast as it decodes, with
the default queue of one frame (the oldest dropped). Models, cached in ``--cache``:

* prototypes built from that video with the paper's HOG (``build_from_videos``);
* the default ``model=cnn`` checkpoint, untrained (speed does not depend on the weights).

Rows per device (CPU, and CUDA when available). ``median`` / ``p99``: capture-to-score latency in
ms of the scored frames; ``dropped``: frames dropped from the queue, in % of captured; ``score fps``:
frames scored per second of scoring time. Goals: p99 <= 50 ms on a 2-core CPU, <= 10 ms on a GPU
(30 fps feed).

    OMP_NUM_THREADS=1 python benchmarks/live.py --seconds 10
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from predict import untrained_cnn_checkpoint  # noqa: E402

from mouseemo.inference.live import LiveOptions, LiveSession, VideoFileSource  # noqa: E402
from mouseemo.inference.prototype_scorer import PrototypeScorer  # noqa: E402
from mouseemo.inference.scorers import CheckpointScorer  # noqa: E402

SIZE = (240, 320)
FPS = 30.0


def make_inputs(cache: Path, seconds: float) -> tuple[Path, Path, Path]:
    from mouseemo.inference.inputs import resolve_inputs
    from mouseemo.inference.prototypes import build_from_videos
    from tests.helpers import write_session

    cache.mkdir(parents=True, exist_ok=True)
    n = int(seconds * FPS)
    session = cache / "data" / "m01" / f"s{n}"
    if not (session / "face.mp4").is_file():
        write_session(cache / "data", session=f"s{n}", num_frames=n, fps=FPS, size=SIZE)
    protos = cache / f"protos_{n}.npz"
    if not protos.is_file():
        build_from_videos(resolve_inputs([str(session)], None, need_events=True)).save(protos)
    ckpt = untrained_cnn_checkpoint(cache)
    return session / "face.mp4", protos, ckpt


def run_one(video: Path, scorer, realtime: bool) -> dict:
    source = VideoFileSource(video, realtime=realtime)
    return LiveSession(source, scorer, LiveOptions(status_s=None, stall_timeout_s=30)).run()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0, help="video length (default 10)")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "mouseemo-bench-live")
    args = p.parse_args()
    video, protos, ckpt = make_inputs(args.cache, args.seconds)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(
        f"torch threads {torch.get_num_threads()}; {SIZE[1]}x{SIZE[0]} frames, {args.seconds:g} s at {FPS:g} fps\n"
    )
    print("| model | device | feed | captured | scored | dropped | median ms | p99 ms | score fps |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for device in devices:
        models = {
            "prototypes (HOG)": PrototypeScorer.load(protos, device),
            "cnn (default, 72x96 input)": CheckpointScorer.load(ckpt, device),
        }
        for name, scorer in models.items():
            for feed, realtime in (("30 fps", True), ("as fast as possible", False)):
                s = run_one(video, scorer, realtime)
                f, lat = s["frames"], s["latency_ms"]
                print(
                    f"| {name} | {device} | {feed} | {f['captured']} | {f['scored']} | "
                    f"{100 * f['dropped_fraction']:.1f}% | {lat['median']:.1f} | {lat['p99']:.1f} | "
                    f"{s['scoring_fps'] or float('nan'):.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
