"""``mouseemo hog``: HOG features of every frame of a face video, streamed to a ``.npy`` file.

Frames are decoded once, in chunks (constant memory in the video's length), while the previous chunk's
HOG is computed. Features are appended to a temporary file beside the output; its ``.npy`` header is
written with the final frame count at the end and the file is renamed onto ``--out``, so an
interrupted run never leaves a file that looks complete.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from contextlib import closing
from pathlib import Path

from mouseemo.commands._args import batch_size, check_out_file
from mouseemo.data.crop import parse_crop
from mouseemo.data.video import VideoReader
from mouseemo.errors import DataError
from mouseemo.inference.stream import decode_ahead
from mouseemo.ops import BLOCK_NORMS, HOGParams, hog
from mouseemo.utils.device import pick_device
from mouseemo.utils.io import atomic_path, remove_stale_temps

#: Bytes reserved for the ``.npy`` header (magic, version, length, dict, padding): the count of
#: frames is only known at the end, so the header is rewritten in place with the same length.
_NPY_HEADER_BYTES = 128


def register(subparsers: argparse._SubParsersAction) -> None:

    p = subparsers.add_parser(
        "hog",
        help="HOG features of every frame of a video -> (num_frames, D) float32 .npy",
        description=(
            "Compute scikit-image-compatible HOG features (the paper's defaults: 8 orientations, 32x32 "
            "pixel cells, 1x1 blocks, L2-Hys, square-root compression) of every gray frame of VIDEO and "
            "write them as a float32 (num_frames, D) .npy file."
        ),
    )
    p.add_argument("video", metavar="VIDEO", type=Path, help="face video (any OpenCV-readable file)")
    p.add_argument("--out", required=True, type=Path, metavar="OUT.npy", help="features file to write")
    p.add_argument("--crop", default=None, metavar="X,Y,W,H", help="crop applied to every frame")
    p.add_argument(
        "--pixels-per-cell", type=int, default=32, metavar="P", help="cell size in pixels (default 32)"
    )
    p.add_argument("--orientations", type=int, default=8, metavar="N", help="orientation bins (default 8)")
    p.add_argument("--no-sqrt", action="store_true", help="no square-root compression (transform_sqrt=False)")
    p.add_argument("--block-norm", default="L2-Hys", choices=BLOCK_NORMS, help="block normalisation")
    p.add_argument(
        "--cells-per-block", type=int, default=1, metavar="C", help="block size in cells (default 1)"
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument(
        "--batch-size", type=batch_size, default=256, metavar="B", help="frames per step (default 256)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=run)


def _npy_header(num_frames: int, dim: int) -> bytes:
    """A version 1.0 ``.npy`` header for a C-order little-endian float32 array, exactly 128 bytes."""
    text = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({num_frames}, {dim}), }}"
    room = _NPY_HEADER_BYTES - 10 - 1
    if len(text) > room:
        raise DataError(f"cannot write a .npy header for shape ({num_frames}, {dim})")
    body = (text + " " * (room - len(text)) + "\n").encode("latin1")
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body


def run(args: argparse.Namespace) -> int:
    import torch

    params = HOGParams.create(
        orientations=args.orientations,
        pixels_per_cell=args.pixels_per_cell,
        cells_per_block=args.cells_per_block,
        block_norm=args.block_norm,
        transform_sqrt=not args.no_sqrt,
    )
    crop = parse_crop(args.crop)
    device = pick_device(args.device)
    out = Path(args.out)
    check_out_file(out, args.overwrite)

    t0 = time.perf_counter()
    with VideoReader(args.video, crop=crop) as vr:
        dim = params.output_size(vr.height, vr.width)  # ConfigError when a frame is smaller than a block
        kwargs = dict(
            orientations=params.orientations,
            pixels_per_cell=params.pixels_per_cell,
            cells_per_block=params.cells_per_block,
            block_norm=params.block_norm,
            transform_sqrt=params.transform_sqrt,
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(out.parent)  # left by a run that was killed
        num = 0
        with (
            atomic_path(out) as tmp,
            open(tmp, "wb") as fh,
            _progress(args, vr.frame_count_hint) as bar,
            closing(decode_ahead(vr.iter_chunks(args.batch_size), depth=2)) as chunks,
        ):
            fh.write(_npy_header(0, dim))
            for _, frames in chunks:
                x = torch.from_numpy(frames).to(device, non_blocking=True)
                feats = hog(x, **kwargs)
                fh.write(feats.to("cpu", torch.float32).numpy().tobytes())
                num += len(frames)
                if bar is not None:
                    bar.update(len(frames))
            if num == 0:
                raise DataError(f"no frames decoded from {args.video}")
            fh.seek(0)
            fh.write(_npy_header(num, dim))
    if not args.quiet:
        dt = time.perf_counter() - t0
        print(
            f"wrote {out}: {num} frames x {dim} features ({num / max(dt, 1e-9):.0f} frames/s)",
            file=sys.stderr,
        )
    return 0


@contextlib.contextmanager
def _progress(args: argparse.Namespace, total: int | None):
    if args.quiet:
        yield None
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="frame", desc="hog", disable=None, dynamic_ncols=True)
    try:
        yield bar
    finally:
        bar.close()
