"""HOG throughput: scikit-image vs mouseemo on CPU (and on CUDA when present), with parity.

Prints frames per second for scikit-image (one process, frame by frame), mouseemo on the CPU
(all of torch's threads), and, when CUDA is available, mouseemo's torch path and fused cupy kernel
on the GPU, at 256x256, 480x640 and 1024x1280 (32-pixel cells, square root, 8 orientations), plus
the largest absolute difference from scikit-image per size.

    python benchmarks/hog.py --frames 64 --repeats 3
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

SIZES = ((256, 256), (480, 640), (1024, 1280))


def face_like_frames(num: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smoothed noise with a face-like range (uint8), reproducible from ``seed``."""
    import cv2

    rng = np.random.default_rng(seed)
    out = np.empty((num, height, width), dtype=np.uint8)
    for i in range(num):
        x = cv2.GaussianBlur(rng.normal(size=(height, width)).astype(np.float32), (0, 0), 3.0)
        x = (x - x.min()) / (x.max() - x.min())
        out[i] = (15 + 225 * x).astype(np.uint8)
    return out


def best_fps(fn, num: int, repeats: int, sync=None) -> float:
    fn()  # warm-up: caches, kernels, thread pool
    if sync:
        sync()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        best = min(best, time.perf_counter() - t0)
    return num / best


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
    args = parser.parse_args(argv)

    from skimage.feature import hog as sk_hog

    from mouseemo.ops import hog

    kw = dict(
        orientations=8,
        pixels_per_cell=(32, 32),
        cells_per_block=(1, 1),
        block_norm="L2-Hys",
        transform_sqrt=True,
    )
    cuda = torch.cuda.is_available()
    cupy_ok = False
    if cuda:
        from mouseemo.ops._hog import cupy_kernel

        cupy_ok = cupy_kernel.available()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, CUDA: {cuda}, cupy: {cupy_ok}")
    cols = ["size", "skimage fps", "mouseemo CPU fps", "speed-up"]
    if cuda:
        cols += ["torch GPU fps", "fused GPU fps"]
    cols += ["max |diff|"]
    print(" | ".join(cols))
    print(" | ".join("---" for _ in cols))
    for h, w in SIZES:
        frames = face_like_frames(args.frames, h, w)
        sk_frames = frames[: args.skimage_frames or args.frames]
        sk_fps = best_fps(lambda f=sk_frames: [sk_hog(x, **kw) for x in f], len(sk_frames), args.repeats)
        x = torch.from_numpy(frames)
        cpu_fps = best_fps(lambda x=x: hog(x, **kw), len(frames), args.repeats)
        ref = np.stack([sk_hog(f, **kw) for f in frames[:8]])
        diff = float(np.abs(hog(x[:8], **kw).double().numpy() - ref).max())
        row = [f"{h}x{w}", f"{sk_fps:.0f}", f"{cpu_fps:.0f}", f"{cpu_fps / sk_fps:.1f}x"]
        if cuda:
            g = torch.from_numpy(face_like_frames(min(args.gpu_frames, 64), h, w)).cuda()
            g = g.repeat((args.gpu_frames + len(g) - 1) // len(g), 1, 1)[: args.gpu_frames]
            sync = torch.cuda.synchronize
            torch_fps = best_fps(lambda g=g: hog(g, **kw, backend="torch"), len(g), args.repeats, sync)
            diff = max(
                diff, float(np.abs(hog(g[:8], **kw, backend="torch").cpu().double().numpy() - ref).max())
            )
            if cupy_ok:
                fused_fps = best_fps(lambda g=g: hog(g, **kw, backend="cupy"), len(g), args.repeats, sync)
                diff = max(
                    diff, float(np.abs(hog(g[:8], **kw, backend="cupy").cpu().double().numpy() - ref).max())
                )
                row += [f"{torch_fps:.0f}", f"{fused_fps:.0f}"]
            else:
                row += [f"{torch_fps:.0f}", "n/a"]
        row.append(f"{diff:.1e}")
        print(" | ".join(row), flush=True)


if __name__ == "__main__":
    main()
