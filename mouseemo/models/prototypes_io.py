"""The prototypes file: a ``.npz`` that loads with ``allow_pickle=False``.

Keys:
    ``prototypes``: ``(K, D)`` float32 prototype matrix.
    ``names``: ``(K,)`` unicode array of prototype names (``neutral`` first).
    ``metadata``: 0-d unicode array holding JSON text with the provenance needed to reuse the
    prototypes safely::

        {"format": "mouseemo.prototypes", "format_version": 1,
         "hog": {"orientations": 8, "pixels_per_cell": [32, 32], "cells_per_block": [1, 1],
                 "block_norm": "L2-Hys", "transform_sqrt": true},
         "crop": [x, y, w, h] | null,      # applied to the raw video frame first
         "resize": [H, W] | null,          # then frames were resized to this (area interpolation)
         "frame_size": [H, W],             # the size HOG was computed on
         "sources": ["path/to/face.mp4", ...],
         "frames": {"pleasure": {"path/to/face.mp4": [[start, stop], ...]}, ...},  # half-open ranges
         "mode": "least-neutral", "k": 10, "drop_first_trial": false, "pool": "groups",
         "created": "2025-01-01T12:00:00+00:00", "mouseemo_version": "0.1.0", "extra": {...}}

Prototypes are only meaningful for features computed the same way: :meth:`Prototypes.check_compatible`
turns a mismatch of HOG parameters or frame size into a :class:`~mouseemo.errors.ConfigError`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import io
import json
import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mouseemo import __version__
from mouseemo.errors import ConfigError, DataError
from mouseemo.ops import HOGParams
from mouseemo.utils.io import atomic_path, json_default

FORMAT = "mouseemo.prototypes"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("prototypes", "names", "metadata")

#: HOG parameters as the paper used them (scikit-image's argument names; :class:`HOGParams`' defaults).
DEFAULT_HOG: dict[str, Any] = dataclasses.asdict(HOGParams())


def hog_params(**overrides: Any) -> dict[str, Any]:
    """HOG parameters in canonical form (tuples, ints, bools), defaults filled in, validated by
    :meth:`mouseemo.ops.HOGParams.create` (the one set of rules for HOG parameters).

    Example:
        >>> hog_params(pixels_per_cell=16)["pixels_per_cell"]
        (16, 16)
    """
    unknown = set(overrides) - set(DEFAULT_HOG)
    if unknown:
        raise ConfigError(f"unknown HOG parameter(s) {sorted(unknown)}; expected {sorted(DEFAULT_HOG)}")
    params = HOGParams.create(**{**DEFAULT_HOG, **{k: v for k, v in overrides.items() if v is not None}})
    return dataclasses.asdict(params)


def feature_length(frame_size: Sequence[int], params: Mapping[str, Any]) -> int:
    """Length of a HOG vector of a ``(H, W)`` frame (scikit-image's layout); 0 if it holds no block."""
    p = hog_params(**params)
    (ph, pw), (bh, bw) = p["pixels_per_cell"], p["cells_per_block"]
    nbr = int(frame_size[0]) // ph - bh + 1
    nbc = int(frame_size[1]) // pw - bw + 1
    if nbr < 1 or nbc < 1:
        return 0
    return nbr * nbc * bh * bw * p["orientations"]


def to_ranges(indices: Sequence[int] | np.ndarray) -> list[list[int]]:
    """Sorted frame indices as half-open ``[start, stop)`` ranges (compact in JSON)."""
    idx = np.unique(np.asarray(indices, dtype=np.int64))
    if len(idx) == 0:
        return []
    cut = np.flatnonzero(np.diff(idx) != 1) + 1
    return [[int(r[0]), int(r[-1]) + 1] for r in np.split(idx, cut)]


def from_ranges(ranges: Sequence[Sequence[int]]) -> np.ndarray:
    """Inverse of :func:`to_ranges`."""
    if not ranges:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.arange(a, b, dtype=np.int64) for a, b in ranges])


def _fmt(value: Any) -> str:
    return repr(tuple(value)) if isinstance(value, list | tuple) else repr(value)


@dataclass
class Prototypes:
    """Prototype matrix, names and provenance (see the module docstring for the file layout).

    Attributes:
        matrix: ``(K, D)`` float32.
        names: ``K`` prototype names.
        hog: HOG parameters (canonical form of :func:`hog_params`).
        frame_size: ``(H, W)`` of the frames HOG was computed on (after crop and resize).
        crop: ``(x, y, w, h)`` applied to raw video frames, or ``None`` (full frame).
        resize: ``(H, W)`` the cropped frames were resized to, or ``None``.
        mode, k, drop_first_trial, pool: how the emotion prototypes were chosen.
        sources: the videos (or ``animal/session`` names) the frames came from.
        frames: per prototype name, per source, the frames averaged as ``[start, stop)`` ranges.
        created: ISO time of creation (UTC).
        version: mouseemo version that wrote the file.
        extra: free-form JSON-serialisable details.
    """

    matrix: np.ndarray
    names: list[str]
    hog: dict[str, Any]
    frame_size: tuple[int, int]
    crop: tuple[int, int, int, int] | None = None
    resize: tuple[int, int] | None = None
    mode: str = "least-neutral"
    k: int = 10
    drop_first_trial: bool = False
    pool: str = "groups"
    sources: list[str] = field(default_factory=list)
    frames: dict[str, dict[str, list[list[int]]]] = field(default_factory=dict)
    created: str = ""
    version: str = __version__
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.matrix = np.asarray(self.matrix, dtype=np.float32)
        self.names = [str(n) for n in self.names]
        self.hog = hog_params(**self.hog)
        self.frame_size = (int(self.frame_size[0]), int(self.frame_size[1]))
        self.crop = tuple(int(v) for v in self.crop) if self.crop is not None else None  # type: ignore[assignment]
        self.resize = (int(self.resize[0]), int(self.resize[1])) if self.resize is not None else None
        if not self.created:
            self.created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        if self.matrix.ndim != 2 or self.matrix.shape[0] != len(self.names):
            raise DataError(f"prototype matrix {self.matrix.shape} does not match {len(self.names)} names")
        if len(set(self.names)) != len(self.names):
            raise DataError(f"duplicate prototype names {self.names}")

    @property
    def num_prototypes(self) -> int:
        return self.matrix.shape[0]

    @property
    def feature_dim(self) -> int:
        return self.matrix.shape[1]

    def frames_of(self, name: str) -> dict[str, np.ndarray]:
        """Frame indices per source that the prototype ``name`` averages."""
        return {src: from_ranges(r) for src, r in self.frames.get(name, {}).items()}

    def metadata(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "hog": {k: list(v) if isinstance(v, tuple) else v for k, v in self.hog.items()},
            "crop": list(self.crop) if self.crop is not None else None,
            "resize": list(self.resize) if self.resize is not None else None,
            "frame_size": list(self.frame_size),
            "sources": [str(s) for s in self.sources],
            "frames": self.frames,
            "mode": self.mode,
            "k": int(self.k),
            "drop_first_trial": bool(self.drop_first_trial),
            "pool": self.pool,
            "created": self.created,
            "mouseemo_version": self.version,
            "extra": self.extra,
        }

    # -- files ------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the ``.npz`` atomically (temporary file, then rename)."""
        path = Path(path)
        meta = json.dumps(self.metadata(), default=json_default)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(
                fh,
                prototypes=self.matrix.astype(np.float32),
                names=np.array(self.names, dtype=np.str_),
                metadata=np.array(meta, dtype=np.str_),
            )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Prototypes:
        """Read a prototypes file (never unpickles).

        Raises:
            DataError: missing, not an ``.npz``, missing keys, or inconsistent contents; the message
                names the file.
        """
        path = Path(path)
        if not path.is_file():
            raise DataError(f"prototypes file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as npz:
                missing = [k for k in REQUIRED_KEYS if k not in npz.files]
                if missing:
                    raise DataError(
                        f"{path} is not a mouseemo prototypes file: missing key(s) {missing} "
                        f"(has {sorted(npz.files)})"
                    )
                matrix = np.array(npz["prototypes"])
                names = [str(n) for n in np.array(npz["names"]).reshape(-1)]
                meta_text = str(np.array(npz["metadata"]).reshape(()))
        except DataError:
            raise
        except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as err:
            raise DataError(f"cannot read prototypes file {path}: {err}") from None
        try:
            meta = json.loads(meta_text)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: metadata is not valid JSON ({err})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise DataError(f"{path}: metadata does not describe a {FORMAT} file")
        if int(meta.get("format_version", 0)) > FORMAT_VERSION:
            raise DataError(
                f"{path} has format version {meta['format_version']}; this mouseemo reads up to "
                f"{FORMAT_VERSION} (upgrade mouseemo)"
            )
        if matrix.ndim != 2 or not np.issubdtype(matrix.dtype, np.floating):
            raise DataError(
                f"{path}: 'prototypes' must be a (K, D) float array; got {matrix.dtype} {matrix.shape}"
            )
        if not np.isfinite(matrix).all():
            raise DataError(f"{path}: the prototype matrix contains NaN or infinite values")
        try:
            protos = cls(
                matrix=matrix,
                names=names,
                hog=meta["hog"],
                frame_size=meta["frame_size"],
                crop=meta.get("crop"),
                resize=meta.get("resize"),
                mode=meta.get("mode", "least-neutral"),
                k=int(meta.get("k", 10)),
                drop_first_trial=bool(meta.get("drop_first_trial", False)),
                pool=meta.get("pool", "groups"),
                sources=list(meta.get("sources", [])),
                frames=dict(meta.get("frames", {})),
                created=meta.get("created", ""),
                version=meta.get("mouseemo_version", ""),
                extra=dict(meta.get("extra", {})),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"{path}: incomplete or invalid metadata ({err!r})") from None
        expected = feature_length(protos.frame_size, protos.hog)
        if expected != protos.feature_dim:
            raise DataError(
                f"{path}: prototypes have {protos.feature_dim} features, but HOG of a "
                f"{protos.frame_size[0]}x{protos.frame_size[1]} frame with {protos.hog} has {expected}"
            )
        return protos

    @classmethod
    def loads(cls, data: bytes) -> Prototypes:
        """Read from bytes (e.g. stored inside a checkpoint)."""
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / "prototypes.npz"
            p.write_bytes(data)
            return cls.load(p)

    def dumps(self) -> bytes:
        """The ``.npz`` file's bytes."""
        buf = io.BytesIO()
        np.savez(
            buf,
            prototypes=self.matrix.astype(np.float32),
            names=np.array(self.names, dtype=np.str_),
            metadata=np.array(json.dumps(self.metadata(), default=json_default), dtype=np.str_),
        )
        return buf.getvalue()

    # -- compatibility ----------------------------------------------------------------------------
    def check_compatible(
        self, hog: Mapping[str, Any] | None = None, frame_size: Sequence[int] | None = None, source: str = ""
    ) -> None:
        """Raise :class:`ConfigError` when features computed with ``hog`` on ``frame_size`` frames
        cannot be compared with these prototypes.

        Example message: ``prototypes were built with pixels_per_cell=(32, 32), got (16, 16)``.
        """
        where = f" (for {source})" if source else ""
        if hog is not None:
            other = hog_params(**hog)
            for key, mine in self.hog.items():
                if other[key] != mine:
                    raise ConfigError(
                        f"prototypes were built with {key}={_fmt(mine)}, got {_fmt(other[key])}{where}"
                    )
        if frame_size is not None:
            got = (int(frame_size[0]), int(frame_size[1]))
            if got != self.frame_size:
                raise ConfigError(
                    f"prototypes were built on {self.frame_size[1]}x{self.frame_size[0]} (w x h) frames "
                    f"(crop {self.crop}), got {got[1]}x{got[0]}{where}: use the same crop size"
                )
