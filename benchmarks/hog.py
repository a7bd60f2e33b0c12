"""HOG throughput: scikit-image vs mouseemo on CPU (and on CUDA when present), with parity.

Prints frames per second for scikit-image (one process, frame by frame; timed runs alternate with
mouseemo's, the best of each is kept), mouseemo on the CPU
(all of torch's threads, or ``--threads``: uint8 frames are split over them), and, when CUDA is available, mouseemo's torch path and fused cupy kernel
on the GPU, at 256x256, 480x640 and 1024x1280 (32-pixel cells, square root, 8 orientations), plus
the largest absolute difference from scikit-image per size.

    python benchmarks/hog.py --frames 64 --repeats 3
    OMP_NUM_THREADS=1 python benchmarks/hog.py --threads 2   # torch's threads set here, not by OpenMP

Its functions (:func:`cpu_rate`, :func:`gpu_rate`, :func:`cupy_state`, :data:`CONFIGS`) are what
``benchmarks/gpu_check.py`` times too (``import hog`` as a sibling module).
"""

from __future__ import annotations

import argparse
import importlib.util

import _harness
import numpy as np
import torch

from mouseemo.testing import face_like_frames

SIZES = ((256, 256), (480, 640), (1024, 1280))
#: The paper's settings: 8 orientations, 32-px cells, 1x1 blocks, L2-Hys, square root.
PAPER = dict(
    orientations=8, pixels_per_cell=(32, 32), cells_per_block=(1, 1), block_norm="L2-Hys", transform_sqrt=True
)
#: Settings timed by gpu_check: the paper's, 9 orientations with 8-px cells, and scikit-image's
#: defaults (3x3 blocks, no square root: the uint8 lookup-table path).
CONFIGS: dict[str, dict] = {
    "paper 8o/32px/1x1/sqrt": PAPER,
    "9o/8px/1x1/sqrt": {**PAPER, "orientations": 9, "pixels_per_cell": (8, 8)},
    "skimage 9o/8px/3x3": {**PAPER, "orientations": 9, "pixels_per_cell": (8, 8), "cells_per_block": (3, 3),
                           "transform_sqrt": False},
}  # fmt: skip


def tiled_frames(num: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """``num`` face-like uint8 frames: at most 64 distinct ones, repeated."""
    frames = face_like_frames(min(num, 64), h, w, seed)
    return np.concatenate([frames] * -(-num // len(frames)))[:num]


def cpu_rate(frames: np.ndarray, kw: dict, repeats: int) -> dict[str, float]:
    """Frames/s (best, median) of :func:`mouseemo.ops.hog` on the CPU, all of torch's threads."""
    from mouseemo.ops import hog

    x = torch.from_numpy(frames)
    return _harness.best_rate(lambda: hog(x, **kw), len(x), repeats)


def gpu_rate(frames: np.ndarray, kw: dict, backend: str, repeats: int) -> dict[str, float]:
    """Frames/s (best, median) and peak MiB of :func:`mouseemo.ops.hog` on frames already on the GPU."""
    from mouseemo.ops import hog

    g = torch.from_numpy(frames).cuda()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    rate = _harness.best_rate(lambda: hog(g, **kw, backend=backend), len(g), repeats, torch.cuda.synchronize)
    return {**rate, "peak MiB": torch.cuda.max_memory_allocated() / 2**20}


def max_diff(frames: torch.Tensor, kw: dict, ref: np.ndarray, backend: str = "auto") -> float:
    """Largest absolute difference of :func:`mouseemo.ops.hog` of ``frames`` (on their device) from ``ref``."""
    from mouseemo.ops import hog

    return float(np.abs(hog(frames, **kw, backend=backend).cpu().double().numpy() - ref).max())


def cupy_state() -> tuple[bool, str]:
    """(usable, why not) of the fused kernel, tried through ``hog(..., backend="cupy")``."""
    if not torch.cuda.is_available():
        return False, "skipped: no CUDA"
    if importlib.util.find_spec("cupy") is None:
        return False, "skipped: cupy not installed"
    from mouseemo.errors import ConfigError
    from mouseemo.ops import hog

    try:
        hog(torch.zeros((1, 64, 64), dtype=torch.uint8, device="cuda"), backend="cupy")
    except ConfigError as err:
        return False, f"cupy path unusable: {err}"
    except Exception as err:  # anything else the kernel raised
        return False, f"cupy path failed: {type(err).__name__}: {err}"
    return True, ""


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=32, help="frames per timed run (default 32)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the best is reported (default 3)")
    parser.add_argument(
        "--skimage-frames", type=int, default=None, help="frames for scikit-image (default: --frames)"
    )
    parser.add_argument(
        "--gpu-frames", type=int, default=1024, help="frames per timed GPU run (default 1024)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the face-like frames (default 0)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads for mouseemo (default: torch's)"
    )
    _harness.add_markdown_argument(parser)
    args = parser.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be >= 1; got {args.threads}")
        torch.set_num_threads(args.threads)
    report = _harness.Report(args.markdown, seed=args.seed)

    from skimage.feature import hog as sk_hog

    kw = PAPER
    cuda = torch.cuda.is_available()
    cupy_ok = cuda and cupy_state()[0]
    report.line(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, CUDA: {cuda}, cupy: {cupy_ok}"
    )
    cols = ["size", "skimage fps", "mouseemo CPU fps", "speed-up"]
    if cuda:
        cols += ["torch GPU fps", "fused GPU fps"]
    cols += ["max |diff|"]
    report.table(cols)
    for h, w in SIZES:
        frames = face_like_frames(args.frames, h, w, args.seed)
        sk_frames = frames[: args.skimage_frames or args.frames]
        # alternating runs, best of each: both see the same load on a shared machine
        sk_fps = cpu_fps = 0.0
        for _ in range(args.repeats):
            sk_fps = max(
                sk_fps, _harness.best_fps(lambda f=sk_frames: [sk_hog(x, **kw) for x in f], len(sk_frames), 1)
            )
            cpu_fps = max(cpu_fps, cpu_rate(frames, kw, 1)["best"])
        ref = np.stack([sk_hog(f, **kw) for f in frames[:8]])
        diff = max_diff(torch.from_numpy(frames[:8]), kw, ref)
        row = [f"{h}x{w}", f"{sk_fps:.0f}", f"{cpu_fps:.0f}", f"{cpu_fps / sk_fps:.1f}x"]
        if cuda:
            g = tiled_frames(args.gpu_frames, h, w, args.seed)
            g8 = torch.from_numpy(g[:8]).cuda()
            for backend in ("torch", "cupy"):
                if backend == "cupy" and not cupy_ok:
                    row.append("n/a")
                    continue
                row.append(f"{gpu_rate(g, kw, backend, args.repeats)['best']:.0f}")
                diff = max(diff, max_diff(g8, kw, ref, backend))
        row.append(f"{diff:.1e}")
        report.row(row)
    report.write()


if __name__ == "__main__":
    main()
