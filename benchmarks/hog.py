"""HOG throughput: scikit-image vs mouseemo on CPU (and on CUDA when present), with parity.

Prints frames per second for scikit-image (one process, frame by frame), mouseemo on the CPU
(all of torch's threads), and, when CUDA is available, mouseemo's torch path and fused cupy kernel
on the GPU, at 256x256, 480x640 and 1024x1280 (32-pixel cells, square root, 8 orientations), plus
the largest absolute difference from scikit-image per size.

    python benchmarks/hog.py --frames 64 --repeats 3
"""

from __future__ import annotations

import argparse

import _harness
import numpy as np
import torch

from mouseemo.testing import face_like_frames

SIZES = ((256, 256), (480, 640), (1024, 1280))


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
    _harness.add_markdown_argument(parser)
    args = parser.parse_args(argv)
    report = _harness.Report(args.markdown, seed=args.seed)

    from skimage.feature import hog as sk_hog

    from mouseemo.ops import cupy_available, hog

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
        cupy_ok = cupy_available()
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
        sk_fps = _harness.best_fps(
            lambda f=sk_frames: [sk_hog(x, **kw) for x in f], len(sk_frames), args.repeats
        )
        x = torch.from_numpy(frames)
        cpu_fps = _harness.best_fps(lambda x=x: hog(x, **kw), len(frames), args.repeats)
        ref = np.stack([sk_hog(f, **kw) for f in frames[:8]])
        diff = float(np.abs(hog(x[:8], **kw).double().numpy() - ref).max())
        row = [f"{h}x{w}", f"{sk_fps:.0f}", f"{cpu_fps:.0f}", f"{cpu_fps / sk_fps:.1f}x"]
        if cuda:
            g = torch.from_numpy(face_like_frames(min(args.gpu_frames, 64), h, w, args.seed)).cuda()
            g = g.repeat((args.gpu_frames + len(g) - 1) // len(g), 1, 1)[: args.gpu_frames]
            sync = torch.cuda.synchronize
            torch_fps = _harness.best_fps(
                lambda g=g: hog(g, **kw, backend="torch"), len(g), args.repeats, sync
            )
            diff = max(
                diff, float(np.abs(hog(g[:8], **kw, backend="torch").cpu().double().numpy() - ref).max())
            )
            if cupy_ok:
                fused_fps = _harness.best_fps(
                    lambda g=g: hog(g, **kw, backend="cupy"), len(g), args.repeats, sync
                )
                diff = max(
                    diff, float(np.abs(hog(g[:8], **kw, backend="cupy").cpu().double().numpy() - ref).max())
                )
                row += [f"{torch_fps:.0f}", f"{fused_fps:.0f}"]
            else:
                row += [f"{torch_fps:.0f}", "n/a"]
        row.append(f"{diff:.1e}")
        report.row(row)
    report.write()


if __name__ == "__main__":
    main()
