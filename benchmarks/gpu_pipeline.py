"""Decode -> HOG / CNN on one device: frames per second of the whole chain for a 480x640 video.

The video is ``--frames`` synthetic face frames (``mouseemo.testing.face_like_frames``, drifting)
written as H.264 (``avc1``) when this OpenCV can encode it, else mp4v (the row says which). Rows:

* ``decode``: gray uint8 chunks of ``--batch-size`` frames; with ``--decoder auto`` torchcodec on
  the GPU (NVDEC, :class:`mouseemo.data.decode.TorchCodecChunks`) when CUDA and torchcodec are
  there, else OpenCV on the CPU (then moved to the device);
* ``decode -> HOG``: the paper's HOG (:func:`mouseemo.ops.hog`; the fused cupy kernel on CUDA when
  cupy works) and Pearson similarity to 7 prototypes, on the device;
* ``decode -> CNN``: resize to the default CNN's 72x96 input on the device (adaptive average pooling)
  and the default ``motion_cnn`` forward (untrained; speed does not depend on the weights).

Each row times the whole chain, decoding included, after one warm-up chunk, and synchronises the
device at the end. Goal on one H100-class GPU: >= 5,000 fps end to end (``decode -> HOG``).

    python benchmarks/gpu_pipeline.py --frames 4000                     # on a GPU machine
    python benchmarks/gpu_pipeline.py --frames 64 --device cpu          # the same code on a CPU
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _harness
import numpy as np
import torch

from mouseemo.data.decode import TorchCodecChunks, resolve_decoder
from mouseemo.data.video import VideoReader
from mouseemo.testing import face_like_frames, untrained_checkpoint, write_video

SIZE = (480, 640)
GOAL_FPS = 5000.0


def make_video(cache: Path, frames: int) -> tuple[Path, str]:
    """A ``frames``-long 480x640 video in ``cache``: H.264 when OpenCV can write it, else mp4v."""
    cache.mkdir(parents=True, exist_ok=True)
    for _fourcc, name in (("avc1", "h264"), ("mp4v", "mp4v")):
        path = cache / f"face_{frames}_{name}.mp4"
        if path.is_file() and path.stat().st_size > 0:
            return path, name
    base = face_like_frames(8, SIZE[0] + 64, SIZE[1] + 64, seed=0)
    clip = np.stack(
        [np.roll(base[i % 8], (i // 8) % 64, axis=1)[: SIZE[0], : SIZE[1]] for i in range(frames)]
    )
    for fourcc, name in (("avc1", "h264"), ("mp4v", "mp4v")):
        path = cache / f"face_{frames}_{name}.mp4"
        try:
            write_video(path, clip, 20.0, fourcc)
            with VideoReader(path, timestamps=None) as vr:
                if vr.frame_count_hint:
                    return path, name
        except Exception:  # noqa: BLE001 - this OpenCV has no such encoder: try the next
            pass
        path.unlink(missing_ok=True)
    raise SystemExit("gpu_pipeline: OpenCV can write neither avc1 nor mp4v here")


def chunks_on(video: Path, decoder: str, device: torch.device, batch: int):
    """Gray uint8 ``(b, H, W)`` chunks on ``device``, from the decoder ``decoder`` resolves to."""
    if resolve_decoder(decoder, device) == "torchcodec":
        yield from (frames for _, frames in TorchCodecChunks(video, None, device).iter_chunks(batch))
        return
    with VideoReader(video, timestamps=None) as vr:
        for _, frames in vr.iter_chunks(batch):
            yield torch.from_numpy(frames).to(device, non_blocking=True)


def hog_similarity(device: torch.device):
    from mouseemo.ops import hog
    from mouseemo.ops.similarity import pearson_similarity

    protos = torch.randn(7, 2400, device=device)

    def fn(x: torch.Tensor) -> torch.Tensor:
        return pearson_similarity(hog(x).float(), protos)

    return fn


def cnn_forward(cache: Path, device: torch.device):
    from mouseemo.inference.scorers import CheckpointScorer

    scorer = CheckpointScorer.load(
        untrained_checkpoint(cache / "motion_cnn_untrained.ckpt", "motion_cnn"), device
    )
    size = tuple(scorer.resize or (72, 96))
    score = scorer.stream()

    def fn(x: torch.Tensor) -> torch.Tensor:
        small = torch.nn.functional.adaptive_avg_pool2d(x[:, None].float(), size)
        return score(small[:, 0].round_().to(torch.uint8))

    return fn


def timed(video: Path, decoder: str, device: torch.device, batch: int, fn=None) -> float:
    """Frames per second of decode (-> ``fn``) over the whole video, after one warm-up chunk."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    warm = next(chunks_on(video, decoder, device, batch))
    if fn is not None:
        fn(warm)
    sync()
    n, t0 = 0, time.perf_counter()
    for x in chunks_on(video, decoder, device, batch):
        if fn is not None:
            fn(x)
        n += len(x)
    sync()
    return n / (time.perf_counter() - t0)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=4000, help="video length in frames (default 4000)")
    p.add_argument("--batch-size", type=int, default=256, help="frames per chunk (default 256)")
    p.add_argument("--device", default="auto", help="auto (cuda when available) | cpu | cuda")
    p.add_argument("--decoder", default="auto", help="auto | opencv | torchcodec (default auto)")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "mouseemo-bench-gpu-pipeline")
    p.add_argument("--no-cnn", action="store_true", help="skip the CNN row")
    _harness.add_markdown_argument(p)
    args = p.parse_args(argv)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)  # fmt: skip
    decoder = resolve_decoder(args.decoder, device)
    video, codec = make_video(args.cache, args.frames)
    report = _harness.Report(args.markdown, seed=0)
    report.line(
        f"{args.frames} frames 480x640 {codec}; device {device}; decoder {decoder}; batch {args.batch_size}"
    )
    report.table(["chain", "device", "decoder", "codec", "fps", "goal"])
    chains = [("decode", None), ("decode -> HOG", hog_similarity(device))]
    if not args.no_cnn:
        chains.append(("decode -> CNN (motion_cnn, 72x96)", cnn_forward(args.cache, device)))
    with torch.inference_mode():
        for name, fn in chains:
            fps = timed(video, decoder, device, args.batch_size, fn)
            goal = f">= {GOAL_FPS:,.0f} on one H100" if name == "decode -> HOG" else ""
            report.row([name, str(device), decoder, codec, f"{fps:.0f}", goal])
    report.write()


if __name__ == "__main__":
    main()
