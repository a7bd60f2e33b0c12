"""Atomic file writes (write to a temporary file in the same folder, then rename), and reading the
text files users hand in.

An interrupted run never leaves a file that looks complete. A user's CSV or JSON file is read as
UTF-8, with or without the byte-order mark Excel's "CSV UTF-8" writes; anything else (UTF-16 from
Excel's "Unicode Text", other encodings, binary files) is refused with one error naming the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mouseemo.errors import DataError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    ``suffix`` defaults to the target's suffix so that writers that infer the format from the
    extension (numpy, OpenCV, matplotlib) keep working.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, default=json_default) + "\n")


def save_npy_atomic(path: str | os.PathLike, array: np.ndarray, allow_pickle: bool = False) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array, allow_pickle=allow_pickle)


def save_npz_atomic(path: str | os.PathLike, **arrays: Any) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def json_default(obj: Any) -> Any:
    """``json.dumps(default=...)`` for numpy scalars and arrays and paths."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


_UTF8_BOM = b"\xef\xbb\xbf"
#: Byte-order marks of encodings that are refused, longest first (UTF-32-LE starts like UTF-16-LE).
_OTHER_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


def read_user_text(path: str | os.PathLike, save_as: str = "CSV UTF-8") -> str:
    """The text of a file a user hands in (``events.csv``, timestamps, ``manifest.csv``, ``session.json``).

    UTF-8, with or without a byte-order mark (dropped). UTF-16/32 files (Excel's "Unicode Text") are
    refused rather than decoded: Excel writes those tab-separated, so they would not parse as CSV
    anyway.

    Args:
        path: the file.
        save_as: what the message tells the user to save the file as.

    Returns:
        The text, newlines untranslated (wrap in ``io.StringIO(text, newline="")`` for :mod:`csv`).

    Raises:
        DataError: the file cannot be read, or is not UTF-8 text; the message names the file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    for bom, name in _OTHER_BOMS:
        if data.startswith(bom):
            raise DataError(f"{path}: not UTF-8 text (looks like {name}); save it as {save_as}")
    if b"\x00" in data:
        head = data[:4096]
        even, odd = head[0::2].count(0), head[1::2].count(0)
        if max(even, odd) > 0.4 * (len(head) / 2) and min(even, odd) == 0:
            raise DataError(f"{path}: not UTF-8 text (looks like UTF-16); save it as {save_as}")
        raise DataError(f"{path}: a binary file, not UTF-8 text; save it as {save_as}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); save it as {save_as}"
        ) from None


def read_user_json(path: str | os.PathLike) -> Any:
    """A user's JSON file (``session.json``), read as :func:`read_user_text` reads text.

    Raises:
        DataError: unreadable, not UTF-8 text, or not valid JSON; the message names the file.
    """
    text = read_user_text(path, save_as="UTF-8 text")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None
