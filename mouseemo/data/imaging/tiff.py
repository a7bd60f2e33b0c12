"""TIFF movies, read lazily: only the frames asked for."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mouseemo.errors import ConfigError, DataError


class TiffStack:
    """Lazy ``(T, Ly, Lx)`` view of a TIFF movie; only the frames asked for are read.

    Three access paths, best first: the whole series memory-mapped (files tifffile wrote contiguously,
    BigTIFF included); each page memory-mapped at its own offset (uncompressed multi-page files such as
    ImageJ stacks, whose image data are interleaved with page headers); pages decoded on demand
    (compressed files). ``mode`` says which one is in use.

    The object can be pickled (file handles are reopened in the new process), so it works inside
    DataLoader workers.

    Args:
        path: TIFF file.

    Shape:
        ``stack[i]``: ``(Ly, Lx)``; ``stack[a:b]``: ``(b - a, Ly, Lx)``.

    Example:
        >>> stack = TiffStack("movie.tif")  # doctest: +SKIP
        >>> first = stack[0]; mean = stack.mean_image(max_frames=500)  # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: TIFF file does not exist")
        self._open()

    # -- opening ------------------------------------------------------------------------------------
    def _open(self) -> None:
        import tifffile

        self._tif = None
        self._mm = None
        self._pages: list = []
        self._frame_offsets: np.ndarray | None = None
        try:
            tif = tifffile.TiffFile(self.path)
        except Exception as exc:  # tifffile raises a variety of errors for non-TIFF input
            raise DataError(f"{self.path}: not a readable TIFF ({exc})") from exc
        try:
            all_series = list(tif.series)
            series = all_series[0]
            shape = tuple(int(s) for s in series.shape)
            self.dtype = np.dtype(series.dtype)
            pages = list(series.pages)
            # tifffile's own writer makes one series per write call; a movie written frame by frame is
            # many single-frame series of the same shape, which together are the stack.
            one_frame_each = (
                len(all_series) > 1
                and len(shape) == 2
                and all(tuple(s.shape) == shape and np.dtype(s.dtype) == self.dtype for s in all_series)
            )
            if one_frame_each:
                pages = [s.pages[0] for s in all_series]
                shape = (len(all_series),) + shape
        except Exception as exc:
            tif.close()
            raise DataError(f"{self.path}: cannot read TIFF structure ({exc})") from exc
        # Singleton axes (ImageJ channel/slice axes of size 1) are dropped; anything else beyond
        # (T, Ly, Lx) is a multi-channel or multi-plane movie that needs splitting first.
        core = [s for s in shape[:-2] if s != 1]
        if len(shape) < 2 or len(core) > 1:
            tif.close()
            raise DataError(f"{self.path}: expected a single-channel (T, Ly, Lx) stack, got shape {shape}")
        self.shape = (core[0] if core else 1, shape[-2], shape[-1])

        if not one_frame_each:
            try:
                mm = tifffile.memmap(self.path, mode="r")
                if mm.size == int(np.prod(self.shape)):
                    self._mm = mm
                    self.mode = "memmap"
                    tif.close()
                    return
            except Exception:
                pass  # not contiguous: try per-page mapping

        if len(pages) == self.shape[0] and all(
            p is not None and getattr(p, "is_memmappable", False) and tuple(p.shape) == self.shape[1:]
            for p in pages
        ):
            self._frame_offsets = np.array([p.dataoffsets[0] for p in pages], dtype=np.int64)
            self._mm = np.memmap(self.path, dtype=np.uint8, mode="r")
            self._frame_dtype = self.dtype.newbyteorder(tif.byteorder)
            self.mode = "pages-memmap"
            tif.close()
            return
        if len(pages) != self.shape[0]:
            tif.close()
            raise DataError(f"{self.path}: {len(pages)} pages for {self.shape[0]} frames; unsupported layout")
        self._tif = tif
        self._pages = pages
        self.mode = "pages"

    def __getstate__(self) -> dict:
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.path = state["path"]
        self._open()

    def close(self) -> None:
        """Release file handles; the stack cannot be read afterwards."""
        if self._tif is not None:
            self._tif.close()
        self._tif = None
        self._mm = None
        self._pages = []

    def __enter__(self) -> TiffStack:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TiffStack({str(self.path)!r}, shape={self.shape}, dtype={self.dtype}, mode={self.mode!r})"

    # -- access -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.shape[0]

    @property
    def Ly(self) -> int:
        return self.shape[1]

    @property
    def Lx(self) -> int:
        return self.shape[2]

    def _read(self, idx: np.ndarray) -> np.ndarray:
        """Frames at integer indices ``idx`` as a fresh ``(len(idx), Ly, Lx)`` array."""
        out = np.empty((len(idx),) + self.shape[1:], dtype=self.dtype)
        if len(idx) == 0:
            return out
        if self.mode == "memmap":
            out[:] = self._mm.reshape(self.shape)[idx]
        elif self.mode == "pages-memmap":
            count = self.shape[1] * self.shape[2]
            for k, i in enumerate(idx):
                frame = np.frombuffer(self._mm, self._frame_dtype, count, int(self._frame_offsets[i]))
                out[k] = frame.reshape(self.shape[1:])
        elif self.mode == "pages":
            if self._tif is None:
                raise DataError(f"{self.path}: stack was closed")
            for k, i in enumerate(idx):
                out[k] = np.asarray(self._pages[int(i)].asarray()).reshape(self.shape[1:])
        else:
            raise DataError(f"{self.path}: stack was closed")
        return out

    def __getitem__(self, key) -> np.ndarray:
        rest: tuple = ()
        if isinstance(key, tuple):
            key, rest = key[0], key[1:]
        num_t = self.shape[0]
        if isinstance(key, (int, np.integer)):
            i = int(key) + num_t if key < 0 else int(key)
            if not 0 <= i < num_t:
                raise IndexError(f"frame {key} out of range for {num_t} frames")
            frames = self._read(np.array([i]))[0]
        elif isinstance(key, slice):
            frames = self._read(np.arange(num_t)[key])
        else:
            idx = np.asarray(key)
            if idx.dtype == bool:
                idx = np.flatnonzero(idx)
            idx = np.where(idx < 0, idx + num_t, idx)
            if idx.size and (idx.min() < 0 or idx.max() >= num_t):
                raise IndexError(f"frame index out of range for {num_t} frames")
            frames = self._read(idx.astype(np.int64).reshape(-1))
        if rest:
            frames = frames[(slice(None),) + rest] if frames.ndim == 3 else frames[rest]
        return frames

    def iter_chunks(self, size: int = 256, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        """Yield consecutive ``(≤size, Ly, Lx)`` blocks of frames ``start..stop``."""
        if size < 1:
            raise ConfigError(f"chunk size must be >= 1, got {size}")
        stop = self.shape[0] if stop is None else min(stop, self.shape[0])
        for a in range(start, stop, size):
            yield self[a : min(a + size, stop)]

    def mean_image(self, max_frames: int | None = 1000, chunk_size: int = 256) -> np.ndarray:
        """Mean frame (float32 ``(Ly, Lx)``) over at most ``max_frames`` evenly spaced frames."""
        num_t = self.shape[0]
        if max_frames is None or max_frames >= num_t:
            idx = np.arange(num_t)
        else:
            idx = np.unique(np.linspace(0, num_t - 1, max(1, int(max_frames))).round().astype(np.int64))
        acc = np.zeros(self.shape[1:], dtype=np.float64)
        for a in range(0, len(idx), chunk_size):
            acc += self._read(idx[a : a + chunk_size]).sum(axis=0, dtype=np.float64)
        return (acc / len(idx)).astype(np.float32)
