"""``mouseemo predict`` throughput: decode-only, HOG-only, CNN-only and end-to-end, on one long video.

The video is the synthetic world's face (``mouseemo synth``, one minute at 480 x 640, 20 fps),
looped to ``--minutes`` and re-encoded (mp4v); it and the models are cached in ``--cache``:

* prototypes built from the one-minute session (``mouseemo prototypes``, the paper's HOG);
* a CNN checkpoint of ``--cnn-model`` (default: the default model, ``motion_cnn``: 3-frame clips
  and a median session reference, which ``predict`` takes from the video in one extra decoding pass)
  with its checkpoint record, untrained (speed does not depend on the weights).

Rows, per device (CPU, and CUDA when available):

* ``decode only``: :class:`~mouseemo.data.video.VideoReader` chunks, nothing else;
* ``HOG only``: :func:`mouseemo.ops.hog` on frames already decoded into memory (``--hog-frames``);
* ``CNN only``: resize + ``on_after_batch_transfer`` + ``predict_step`` on decoded frames;
* ``predict --prototypes`` / ``predict --ckpt``: the whole command in a fresh process
  (``python -m mouseemo predict VIDEO ... --overwrite --quiet``; start-up, plot and JSON included),
  timed from launch to exit; its peak memory (RSS) is printed too.

``ratio`` is end-to-end fps over the slower of decode-only and the model-only row (HOG or CNN): 1.0
means decoding and compute fully overlap. Goals: >= 0.9 for prototypes, >= 0.75 for the CNN. A
second table puts the ratios side by side, for the whole command and for its streaming part alone
(``in-process``: frames over the ``processing.seconds`` of the summary JSON, i.e. without the
interpreter's start-up, imports, model loading and the plot).
``CPU ms/frame`` is user + system CPU time per frame (all threads): on a shared machine it shows
whether a low ratio comes from the work itself or from cores taken by other processes (the
end-to-end CPU time should be close to decode + model).
``--parallel N`` adds a row for N copies of the video with ``--workers N``.

    python benchmarks/predict.py                      # 10-minute video
    python benchmarks/predict.py --minutes 2 --repeats 1 --no-cnn
    python benchmarks/predict.py --minutes 4 --repeats 1 --markdown docs/results/predict.md
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _harness
import numpy as np
import torch

from mouseemo.testing import untrained_checkpoint

REPO = _harness.REPO


def make_video(cache: Path, minutes: float, size: tuple[int, int], fps: float) -> tuple[Path, Path]:
    """The long benchmark video and the one-minute synthetic session it loops (both cached)."""
    import cv2

    from mouseemo.data.synthetic import generate_dataset
    from mouseemo.data.video import VideoReader

    h, w = size
    session_root = cache / f"synth_{h}x{w}"
    session = session_root / "m01" / "s01"
    if not (session / "face.mp4").is_file():
        print(f"rendering a one-minute synthetic session at {h}x{w} ...", flush=True)
        generate_dataset(session_root, num_mice=1, minutes=1.0, seed=3, size=(h, w), fps=fps, imaging=False)
    video = cache / f"long_{h}x{w}_{minutes:g}min.mp4"
    if not video.is_file():
        with VideoReader(session / "face.mp4", timestamps=None) as vr:
            loop = vr.read()
        total = int(round(minutes * 60 * fps))
        print(f"writing {total} frames to {video} ...", flush=True)
        tmp = video.with_name(".tmp_" + video.name)
        vw = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h), True)
        for i in range(total):
            j = i % (2 * len(loop))  # forwards then backwards: no jump at the seam
            f = loop[j] if j < len(loop) else loop[2 * len(loop) - 1 - j]
            vw.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
        vw.release()
        os.replace(tmp, video)
    return video, session


def make_models(cache: Path, session: Path, cnn_model: str = "motion_cnn") -> tuple[Path, Path]:
    from mouseemo.inference.inputs import resolve_inputs
    from mouseemo.inference.prototypes import build_from_videos

    protos = cache / f"protos_{session.parent.parent.name}.npz"
    if not protos.is_file():
        build_from_videos(resolve_inputs([str(session)], None, need_events=True)).save(protos)
    ckpt = untrained_checkpoint(cache / f"{cnn_model}_untrained.ckpt", cnn_model)
    return protos, ckpt


def best(repeats: int, fn, *args) -> tuple[float, float]:
    """The fastest of ``repeats`` runs of ``fn(*args) -> (fps, cpu ms/frame)``."""
    return max((fn(*args) for _ in range(repeats)), key=lambda r: r[0])


def decode_fps(video: Path, batch: int) -> tuple[float, float]:
    from mouseemo.data.video import VideoReader

    t0, c0 = time.perf_counter(), _harness.cpu_seconds()
    n = 0
    with VideoReader(video, timestamps=None) as vr:
        for _, frames in vr.iter_chunks(batch):
            n += len(frames)
    return n / (time.perf_counter() - t0), (_harness.cpu_seconds() - c0) / n * 1e3


def model_fps(scorer, frames: np.ndarray, batch: int) -> tuple[float, float]:
    """Scores per second on decoded frames: prepare (resize) + transfer + model, as predict does."""
    if getattr(scorer, "needs_reference", False):
        scorer.begin_frames(frames)  # the session reference, as predict takes it (not timed)
    score = scorer.stream()
    sync = torch.cuda.synchronize if scorer.device.type == "cuda" else (lambda: None)
    score(torch.from_numpy(scorer.prepare(frames[:batch])).to(scorer.device))  # warm-up
    sync()
    t0, c0 = time.perf_counter(), _harness.cpu_seconds()
    for i in range(0, len(frames), batch):
        x = torch.from_numpy(scorer.prepare(frames[i : i + batch])).to(scorer.device)
        score(x).cpu()
    sync()
    return len(frames) / (time.perf_counter() - t0), (_harness.cpu_seconds() - c0) / len(frames) * 1e3


def run_command(args: list[str]) -> tuple[float, float, float, float]:
    """Wall seconds, CPU seconds, peak RSS (MB) and the summed ``processing.seconds`` of the summary
    JSONs written to ``--out`` of ``python -m mouseemo predict ARGS`` (a fresh process)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "mouseemo", "predict", *args], cwd=REPO, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"mouseemo predict {' '.join(args)} failed with exit code {proc.returncode}")
    out = Path(args[args.index("--out") + 1])
    inside = sum(json.loads(p.read_text())["processing"]["seconds"] for p in out.glob("[!.]*.json"))
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0, inside


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the long video (default 10)")
    parser.add_argument("--size", default="480x640", help="frame size HxW (default 480x640)")
    parser.add_argument("--fps", type=float, default=20.0, help="frame rate (default 20)")
    parser.add_argument(
        "--cache", type=Path, default=REPO / "data" / "bench", help="where videos/models are kept"
    )
    parser.add_argument("--batch-size", type=int, default=256, help="frames per chunk (default 256)")
    parser.add_argument("--hog-frames", type=int, default=1024, help="decoded frames for the model-only rows")
    parser.add_argument(
        "--repeats", type=int, default=2, help="runs per row; the best is reported (default 2)"
    )
    parser.add_argument("--no-cnn", action="store_true", help="skip the CNN rows")
    parser.add_argument(
        "--cnn-model", default="motion_cnn", help="conf/model config of the CNN (default motion_cnn)"
    )
    parser.add_argument("--parallel", type=int, default=0, help="also time N copies with --workers N")
    _harness.add_markdown_argument(parser)
    args = parser.parse_args(argv)
    report = _harness.Report(args.markdown, seed=3)  # the synthetic session's seed

    from mouseemo.data.video import VideoReader
    from mouseemo.inference.prototype_scorer import PrototypeScorer
    from mouseemo.inference.scorers import CheckpointScorer

    h, w = (int(v) for v in args.size.lower().split("x"))
    args.cache.mkdir(parents=True, exist_ok=True)
    video, session = make_video(args.cache, args.minutes, (h, w), args.fps)
    protos, ckpt = make_models(args.cache, session, args.cnn_model)
    with VideoReader(video, timestamps=None) as vr:
        num_frames = vr.frame_count_hint
        frames = vr.read(0, args.hog_frames)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    report.line(
        f"video: {video.name}, {num_frames} frames {h}x{w} mp4v at {args.fps:g} fps; {os.cpu_count()} CPU cores, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), CUDA: {torch.cuda.is_available()}; "
        f"best of {args.repeats}"
    )
    rows = []  # (device, stage, fps, cpu ms/frame, ratio, peak RSS MB)
    goals = []  # (device, model, slower stage, its fps, whole-command fps, in-process fps, goal)
    out = Path(tempfile.mkdtemp(prefix="mouseemo-bench-"))

    def command(
        label: str, device: str, model: list[str], inputs: list[str], frames_total: int, ref, extra=()
    ) -> tuple[float, float]:
        runs = [
            run_command([*inputs, *model, "--out", str(out), "--device", device, "--overwrite", "--quiet",
                         "--batch-size", str(args.batch_size), *extra])
            for _ in range(args.repeats)
        ]  # fmt: skip
        wall, cpu, rss, inside = min(runs)
        fps = frames_total / wall
        rows.append((device, label, fps, cpu / frames_total * 1e3, fps / ref if ref else None, rss))
        return fps, frames_total / max(inside, 1e-9)

    try:
        for device in devices:
            dec, dec_cpu = best(args.repeats, decode_fps, video, args.batch_size)
            rows.append((device, "decode only", dec, dec_cpu, None, None))
            hog, hog_cpu = best(
                args.repeats, model_fps, PrototypeScorer.load(protos, device), frames, args.batch_size
            )
            rows.append((device, f"HOG only ({len(frames)} decoded frames)", hog, hog_cpu, None, None))
            model = ["--prototypes", str(protos)]
            ref = min(dec, hog)
            e2e = command(
                "predict --prototypes (whole command)", device, model, [str(video)], num_frames, ref
            )
            goals.append((device, "prototypes (HOG)", "decode" if dec <= hog else "HOG", ref, *e2e, 0.9))
            if not args.no_cnn:
                scorer = CheckpointScorer.load(ckpt, device)
                cnn, cnn_cpu = best(args.repeats, model_fps, scorer, frames, args.batch_size)
                rows.append(
                    (device, f"CNN only ({args.cnn_model}: resize + forward)", cnn, cnn_cpu, None, None)
                )
                ref = min(dec, cnn)
                e2e = command(f"predict --ckpt {args.cnn_model} (whole command)", device, ["--ckpt", str(ckpt)],
                              [str(video)], num_frames, ref)  # fmt: skip
                goals.append((device, args.cnn_model, "decode" if dec <= cnn else "CNN", ref, *e2e, 0.75))
            if args.parallel > 1:
                copies = out / "copies"
                copies.mkdir(exist_ok=True)
                for k in range(args.parallel):
                    dst = copies / f"copy{k}.mp4"
                    if not dst.exists():
                        os.link(video, dst)
                label = f"predict --prototypes, {args.parallel} videos, --workers {args.parallel}"
                command(label, device, model, [str(copies)], args.parallel * num_frames, None,
                        ["--workers", str(args.parallel)])  # fmt: skip
    finally:
        shutil.rmtree(out, ignore_errors=True)

    report.line()
    report.table(["device", "stage", "fps", "CPU ms/frame", "ratio", "peak RSS"])
    for device, stage, fps, cpu, ratio, rss in rows:
        r = f"{ratio:.2f}" if ratio is not None else ""
        m = f"{rss:.0f} MB" if rss is not None else ""
        report.row([device, stage, f"{fps:.0f}", f"{cpu:.2f}", r, m])
    report.line("ratio: end-to-end fps / min(decode only, model only)")
    report.line()
    report.table(["device", "model", "slower stage", "its fps", "whole command fps", "whole ratio",
                  "in-process fps", "in-process ratio", "goal"])  # fmt: skip
    for device, name, stage, ref, whole, inside, goal in goals:
        report.row([device, name, stage, f"{ref:.0f}", f"{whole:.0f}", f"{whole / ref:.2f}", f"{inside:.0f}",
                    f"{inside / ref:.2f}", f">= {goal:g}"])  # fmt: skip
    report.line(
        "whole command: launch to exit of `mouseemo predict`; in-process: frames / processing.seconds of its "
        "summary JSON (no interpreter start-up, imports, model loading or plot)"
    )
    if hasattr(os, "getloadavg"):  # other processes' load changes every row on a shared machine
        load = os.getloadavg()
        report.line(
            f"load average at the end (1/5/15 min): {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, {os.cpu_count()} cores"
        )
    report.write()


if __name__ == "__main__":
    main()
