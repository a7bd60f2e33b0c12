"""Safe file writes: atomic, umask-respecting, and never outside the folder they belong to.

* :func:`atomic_path` writes to a temporary file in the same folder, then renames it, so an
  interrupted run never leaves a file that looks complete. Temporary names carry the host and
  process id (``.<name>.mouseemo-<host>-<pid>-<random>.tmp<suffix>``), so :func:`remove_stale_temps`
  can remove those of a run that was killed, and only those.
* Files end with the permissions a plain ``open(path, "w")`` would give (``0o666`` less the umask),
  not the ``0o600`` of a temporary file: on a shared lab server the next person can read them.
* :func:`safe_component` turns a name that came from a file (a manifest row, ``session.json``) into
  one path component, so it cannot lead outside the output folder.
* :func:`write_json_atomic` writes strict JSON: NaN and infinities become ``null``.
* :func:`read_user_text` / :func:`read_user_json` read the text files users hand in as UTF-8, with
  or without the byte-order mark Excel's "CSV UTF-8" writes; anything else (UTF-16 from Excel's
  "Unicode Text", other encodings, binary files) is refused with one error naming the file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mouseemo.errors import ConfigError, DataError

_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:24] or "host"
#: What a temporary name carries after its first dot: ``.<name>.<TEMP_TAG>-<pid>-<random>.tmp...``.
TEMP_TAG = f"mouseemo-{_HOST}"
#: Matches the temporary files :func:`atomic_path` makes: group 1 the host, group 2 the pid.
TEMP_PATTERN = re.compile(r"^\..*\.mouseemo-([A-Za-z0-9]+)-(\d+)-[^.]*\.tmp[^/]*$")


def current_umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux ``/proc``)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: read it by setting it, then put it back at once
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that killed mouseemo runs left in ``folder``; returns them.

    Only files and folders named as :func:`atomic_path` names them (folders: ``.<name>.`` +
    :data:`TEMP_TAG` ``-<pid>-<random>.tmp...``), made on this host by a process that no longer runs,
    are removed: a run still writing into the same folder keeps its files.
    """
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        m = TEMP_PATTERN.match(p.name)
        if not m or m.group(1) != _HOST or p.is_symlink() or not (p.is_file() or p.is_dir()):
            continue
        pid = int(m.group(2))
        if pid == os.getpid() or _pid_alive(pid):
            continue
        with contextlib.suppress(FileNotFoundError):
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    ``suffix`` defaults to the target's suffix so that writers that infer the format from the
    extension (numpy, OpenCV, matplotlib) keep working. The file gets ``0o666`` less the umask
    before it is renamed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.stem}.{TEMP_TAG}-{os.getpid()}-", suffix=f".tmp{suffix}", dir=path.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]+")


def safe_component(name: str, fallback: str = "unnamed") -> str:
    """``name`` as one safe path component: no separators, no ``..``, no leading dot.

    Separators, control characters and characters Windows forbids become ``_``; leading dots and
    spaces are stripped; an empty result becomes ``fallback``. Names that are already safe
    (``m01_s01``, ``trial 3``, ``_x``) come back unchanged.

    Example:
        >>> safe_component("../../etc/x")
        'etc_x'
    """
    name = str(name)
    text = _UNSAFE.sub("_", name)
    text = re.sub(r"\.\.+", "_", text)  # no '..' anywhere
    text = text.strip(" ._" if text != name else " .")  # no leading dot; Windows drops trailing ones
    return text[:200] or fallback


def inside(folder: str | os.PathLike, path: str | os.PathLike) -> Path:
    """``path`` if it lies inside ``folder`` (after resolving ``..`` and links), else ConfigError."""
    folder_r = Path(folder).resolve()
    path_r = Path(path).resolve()
    if path_r != folder_r and folder_r not in path_r.parents:
        raise ConfigError(f"refusing to write {path}: it lies outside the output folder {folder}")
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def json_safe(obj: Any) -> Any:
    """``obj`` with numpy values made plain and non-finite floats made ``None`` (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dumps_json(obj: Any) -> str:
    """Strict, indented JSON text of ``obj`` (see :func:`json_safe`), ending in a newline."""
    return json.dumps(json_safe(obj), indent=2, allow_nan=False, default=json_default) + "\n"


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, dumps_json(obj))


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
