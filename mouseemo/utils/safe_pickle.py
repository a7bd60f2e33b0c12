"""Read ``.npy``/``.npz`` files whose object arrays must be unpickled, without letting them run code.

Suite2p stores ``ops.npy`` and ``stat.npy`` as pickled object arrays, and CaImAn's ``.npz`` results
hold pickled dicts and sparse matrices, so ``np.load(allow_pickle=True)`` would run whatever a
crafted file asks for. These loaders parse the ``.npy`` header themselves, read plain arrays with
``allow_pickle=False``, and unpickle object arrays with an unpickler that can only build what such
files hold: NumPy arrays, dtypes and scalars, Python containers, numbers, strings, bytes, dates
(Suite2p's ``date_proc``) and, when asked for, SciPy sparse matrices. Anything else
(``builtins.eval``, ``os.system``, any other class) raises :class:`~mouseemo.errors.DataError`
before it is called.

Files written by NumPy 1.x name ``numpy.core.*`` and files written by NumPy 2.x name
``numpy._core.*``; both resolve to the installed NumPy's functions. ``encoding="latin1"`` reads
Python 2-era pickles as ``np.load`` does.
"""

from __future__ import annotations

import _compat_pickle
import importlib
import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.lib.format as npy_format

from mouseemo.errors import DataError

#: The refusal message's reason, by default.
DEFAULT_RULE = "such files may only hold arrays, dicts, lists, numbers and strings"


def _numpy_core(submodule: str, name: str) -> Callable[[], Any]:
    def resolve() -> Any:
        for module in (f"numpy._core.{submodule}", f"numpy.core.{submodule}"):
            try:
                return getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError):
                continue
        raise AttributeError(name)  # pragma: no cover - every supported NumPy has both names

    return resolve


def _attr(module: str, name: str) -> Callable[[], Any]:
    return lambda: getattr(importlib.import_module(module), name)


_RECONSTRUCT = _numpy_core("multiarray", "_reconstruct")
_SCALAR = _numpy_core("multiarray", "scalar")
_FROMBUFFER = _numpy_core("numeric", "_frombuffer")  # arrays pickled with protocol 5

#: ``(module, name)`` as written in the pickle (after Python 2 names are mapped) -> the object.
NUMPY_GLOBALS: dict[tuple[str, str], Callable[[], Any]] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("builtins", "complex"): lambda: complex,
    ("builtins", "set"): lambda: set,
    ("builtins", "frozenset"): lambda: frozenset,
    ("builtins", "bytearray"): lambda: bytearray,
    ("datetime", "datetime"): _attr("datetime", "datetime"),
    ("datetime", "date"): _attr("datetime", "date"),
    ("datetime", "time"): _attr("datetime", "time"),
    ("datetime", "timedelta"): _attr("datetime", "timedelta"),
}


def _sparse_globals() -> dict[tuple[str, str], Callable[[], Any]]:
    # Pickles name the class's module at the time of writing: ``scipy.sparse.coo`` in old SciPy,
    # ``scipy.sparse._coo`` since 1.8. Both resolve to the public class of the installed SciPy.
    out: dict[tuple[str, str], Callable[[], Any]] = {}
    for fmt in ("coo", "csc", "csr"):
        for kind in ("matrix", "array"):
            name = f"{fmt}_{kind}"
            for module in (f"scipy.sparse.{fmt}", f"scipy.sparse._{fmt}", "scipy.sparse"):
                out[(module, name)] = _attr("scipy.sparse", name)
    return out


#: Extra globals for CaImAn files: SciPy's COO/CSC/CSR sparse matrices and arrays.
SPARSE_GLOBALS = _sparse_globals()


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose ``find_class`` only returns the objects in ``allowed``."""

    def __init__(
        self,
        file: IO[bytes],
        allowed: dict[tuple[str, str], Callable[[], Any]],
        source: str,
        rule: str = DEFAULT_RULE,
        encoding: str = "ASCII",
    ) -> None:
        super().__init__(file, encoding=encoding, fix_imports=True)
        self._allowed = allowed
        self._source = source
        self._rule = rule

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        # Python 2 pickles name __builtin__, copy_reg, ...: map them as pickle's fix_imports does
        # (no Python 3 module has those names)
        if key in _compat_pickle.NAME_MAPPING:
            key = _compat_pickle.NAME_MAPPING[key]
        elif module in _compat_pickle.IMPORT_MAPPING:
            key = (_compat_pickle.IMPORT_MAPPING[module], name)
        resolve = self._allowed.get(key)
        if resolve is None:
            raise DataError(f"{self._source}: refusing to unpickle {key[0]}.{key[1]} ({self._rule})")
        return resolve()

    def persistent_load(self, pid: Any) -> Any:
        raise DataError(f"{self._source}: refusing to unpickle a persistent reference")


def _read_header(fh: IO[bytes], source: str) -> tuple[tuple[int, ...], np.dtype] | None:
    """Shape and dtype from a ``.npy`` header; ``None`` for a format version read only without pickles."""
    try:
        version = npy_format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = npy_format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _, dtype = npy_format.read_array_header_2_0(fh)
        else:
            # 3.0 only differs by a UTF-8 header (structured dtypes with non-ASCII field names)
            return None
    except ValueError as exc:
        raise DataError(f"{source}: not a NumPy .npy file ({exc})") from None
    return tuple(shape), dtype


def _unpickle_array(
    fh: IO[bytes], shape: tuple[int, ...], source: str, allowed: dict, rule: str, encoding: str
) -> np.ndarray:
    """The pickled object array after the header, as ``np.load`` reads it, through the allow-list."""
    try:
        array = RestrictedUnpickler(fh, allowed, source, rule, encoding=encoding).load()
    except DataError:
        raise
    except Exception as exc:  # truncated or malformed pickle data
        raise DataError(f"{source}: cannot unpickle its object array ({type(exc).__name__}: {exc})") from None
    if not isinstance(array, np.ndarray) or array.shape != shape:
        got = f"shape {array.shape}" if isinstance(array, np.ndarray) else type(array).__name__
        raise DataError(f"{source}: its header says an object array of shape {shape}, the data holds {got}")
    return array


def _plain_array(fh: IO[bytes], source: str) -> np.ndarray:
    try:
        return npy_format.read_array(fh, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{source}: cannot read ({exc})") from None


def _allowed(extra: dict[tuple[str, str], Callable[[], Any]] | None) -> dict:
    return {**NUMPY_GLOBALS, **(extra or {})}


def load_npy(
    path: str | os.PathLike,
    extra: dict[tuple[str, str], Callable[[], Any]] | None = None,
    rule: str = DEFAULT_RULE,
    encoding: str = "latin1",
) -> np.ndarray:
    """``np.load(path, allow_pickle=True, encoding=encoding)`` for data files, without running code.

    Args:
        path: a ``.npy`` file.
        extra: more allowed ``(module, name) -> resolver`` pairs (e.g. :data:`SPARSE_GLOBALS`).
        rule: why a refused object is refused, for the message.
        encoding: how Python 2 byte strings are decoded (``"latin1"`` as for NumPy data).

    Raises:
        DataError: the file is not a ``.npy`` file, or its pickle names anything not allowed (the
            message names the file and the refused object).
    """
    path = Path(path)
    with open(path, "rb") as fh:
        header = _read_header(fh, str(path))
        if header is not None and header[1].hasobject:
            return _unpickle_array(fh, header[0], str(path), _allowed(extra), rule, encoding)
        fh.seek(0)
        return _plain_array(fh, str(path))


def load_npz(
    path: str | os.PathLike,
    extra: dict[tuple[str, str], Callable[[], Any]] | None = None,
    rule: str = DEFAULT_RULE,
    encoding: str = "latin1",
) -> dict[str, np.ndarray]:
    """Every member of a ``.npz`` as ``{name: array}``, object members unpickled as :func:`load_npy` does."""
    path = Path(path)
    allowed = _allowed(extra)
    out: dict[str, np.ndarray] = {}
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise DataError(f"{path}: not a NumPy .npz file ({exc})") from None
    with zf:
        for member in zf.namelist():
            key = member[:-4] if member.endswith(".npy") else member
            source = f"{path} ({member})"
            with zf.open(member) as fh:
                header = _read_header(fh, source)
                if header is not None and header[1].hasobject:
                    out[key] = _unpickle_array(fh, header[0], source, allowed, rule, encoding)
                    continue
            with zf.open(member) as fh:  # from the start again: read_array parses the header itself
                out[key] = _plain_array(fh, source)
    return out
