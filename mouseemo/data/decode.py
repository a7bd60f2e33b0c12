"""Which decoder turns a video into gray uint8 frames: OpenCV on the CPU, or torchcodec (NVDEC on a GPU).

``decoder`` is one of :data:`DECODERS`:

* ``"opencv"``: :meth:`mouseemo.data.video.VideoReader.iter_chunks` (FFmpeg through OpenCV, on the CPU);
* ``"torchcodec"``: :class:`TorchCodecChunks` (``torchcodec.decoders.VideoDecoder``; on a CUDA device
  it decodes with NVDEC, crop and gray conversion run there too); it needs the ``torchcodec`` package
  and refuses to run without it;
* ``"auto"``: torchcodec when it is installed and the frames are scored on a CUDA device, else OpenCV.

Both give the same gray frames for the same RGB pixels: colour frames become gray with OpenCV's
``COLOR_RGB2GRAY`` integer rule (:func:`gray_from_rgb`), the project-wide rule of
:func:`mouseemo.data.crop.to_gray`. The two libraries may convert YUV to RGB slightly differently,
so frames of the two decoders can differ by a grey level or so.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from mouseemo.data.crop import Crop
from mouseemo.errors import ConfigError, DataError

#: The accepted values of ``decoder``.
DECODERS: tuple[str, ...] = ("auto", "opencv", "torchcodec")


@functools.lru_cache(maxsize=1)
def torchcodec_available() -> bool:
    """Whether ``torchcodec.decoders`` imports (the package and its FFmpeg libraries)."""
    try:
        import torchcodec.decoders  # noqa: F401
    except Exception:  # ImportError, or FFmpeg libraries it cannot load (RuntimeError, OSError)
        return False
    return True


def resolve_decoder(decoder: str, device: torch.device | str = "cpu") -> str:
    """``"opencv"`` or ``"torchcodec"``: the decoder that ``decoder`` means for frames scored on ``device``.

    Raises:
        ConfigError: ``decoder`` is not one of :data:`DECODERS`, or is ``"torchcodec"`` and torchcodec
            is not installed.
    """
    if decoder not in DECODERS:
        raise ConfigError(f"`decoder` must be one of {', '.join(DECODERS)}; got {decoder!r}")
    if decoder == "opencv":
        return "opencv"
    if decoder == "torchcodec":
        if not torchcodec_available():
            raise ConfigError(
                "`decoder` torchcodec needs the torchcodec package, which is not installed or cannot "
                "load its FFmpeg libraries (pip install torchcodec), or choose `decoder` auto or opencv"
            )
        return "torchcodec"
    cuda = torch.device(device).type == "cuda"
    return "torchcodec" if cuda and torchcodec_available() else "opencv"


def gray_from_rgb(rgb: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` uint8 RGB -> ``(N, H, W)`` uint8 gray, bit for bit OpenCV's ``COLOR_RGB2GRAY``
    (``(9798 R + 19235 G + 3735 B + 16384) >> 15``, checked over all 2^24 colours in the tests), on the tensor's device."""
    if rgb.ndim != 4 or rgb.shape[1] != 3 or rgb.dtype != torch.uint8:
        raise DataError(f"expected (N, 3, H, W) uint8 RGB frames; got {tuple(rgb.shape)} {rgb.dtype}")
    c = rgb.to(torch.int32)
    y = c[:, 0] * 9798 + c[:, 1] * 19235 + c[:, 2] * 3735 + 16384
    return torch.bitwise_right_shift(y, 15).to(torch.uint8)


class TorchCodecChunks:
    """Gray uint8 chunks of a video decoded by torchcodec on ``device`` (NVDEC on CUDA).

    Args:
        path: the video file.
        crop: ``(x, y, w, h)`` applied before the gray conversion (as :class:`VideoReader` does), or None.
        device: where frames are decoded and stay (``"cuda"``, ``"cpu"``).
        decoder: a ready ``torchcodec.decoders.VideoDecoder``-like object (``len()`` and
            ``get_frames_in_range(start, stop)`` returning ``.data`` ``(N, 3, H, W)`` uint8); made
            from ``path`` when None.
    """

    def __init__(self, path: str | Path, crop: Crop | None = None, device="cpu", decoder=None) -> None:
        self.path = Path(path)
        self.crop = crop
        self.device = torch.device(device)
        if decoder is None:
            resolve_decoder("torchcodec")  # one clear error without the package
            from torchcodec.decoders import VideoDecoder

            try:
                decoder = VideoDecoder(str(self.path), device=str(self.device), dimension_order="NCHW")
            except Exception as err:  # noqa: BLE001 - torchcodec raises plain RuntimeError/ValueError
                raise DataError(f"torchcodec cannot decode {self.path}: {err}") from err
        self._decoder = decoder

    def __len__(self) -> int:
        return len(self._decoder)

    def _gray(self, rgb: torch.Tensor) -> torch.Tensor:
        if self.crop is not None:
            x, y, w, h = self.crop
            rgb = rgb[:, :, y : y + h, x : x + w]
        return gray_from_rgb(rgb.contiguous())

    def iter_chunks(
        self, chunk_size: int = 256, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """``(first_index, frames)`` with ``frames`` uint8 ``(b, H, W)`` on the device, ``b <= chunk_size``."""
        if chunk_size <= 0:
            raise ConfigError(f"chunk_size must be positive, got {chunk_size}")
        end = len(self) if stop is None else min(int(stop), len(self))
        for i in range(start, end, chunk_size):
            batch = self._decoder.get_frames_in_range(i, min(i + chunk_size, end))
            yield i, self._gray(batch.data)


def decoded_chunks(
    vr, chunk_size: int, decoder: str = "opencv", device="cpu"
) -> Iterator[tuple[int, np.ndarray]]:
    """``vr.iter_chunks(chunk_size)`` (``decoder`` opencv), or the same chunks decoded by torchcodec on
    ``device`` and handed over as numpy ``(b, H, W)`` uint8 (``decoder`` torchcodec; see
    :func:`resolve_decoder` for auto)."""
    if resolve_decoder(decoder, device) == "opencv":
        yield from vr.iter_chunks(chunk_size)
        return
    for start, frames in TorchCodecChunks(vr.path, vr.crop, device).iter_chunks(chunk_size):
        yield start, frames.cpu().numpy()


__all__ = [
    "DECODERS",
    "TorchCodecChunks",
    "decoded_chunks",
    "gray_from_rgb",
    "resolve_decoder",
    "torchcodec_available",
]
