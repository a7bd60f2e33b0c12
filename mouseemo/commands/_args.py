"""Argument types and ``--out`` checks shared by the subcommands."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from mouseemo.data.crop import CROP_PRESETS, WHOLE_FRAME, Crop, parse_crop
from mouseemo.errors import ConfigError
from mouseemo.utils.io import remove_stale_temps


def finite_float(text: str) -> float:
    """An argparse ``type`` for a real number: ``nan`` and ``inf`` are refused by name."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def crop_arg(text: str) -> Crop | str:
    """An argparse ``type`` for ``--crop``: ``x,y,w,h`` or a preset name gives the crop, ``none``
    gives ``"none"`` (the whole frame, said out, so it wins over a session's or a model's crop)."""
    try:
        crop = parse_crop(text)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err).replace("`crop` ", "")) from None
    return WHOLE_FRAME if crop is None else crop


def add_crop_argument(parser: argparse.ArgumentParser, default: str) -> None:
    """``--crop`` of the commands that read session folders, all by one rule
    (:func:`mouseemo.data.session.resolve_crop`); ``default`` says what no ``--crop`` means."""
    presets = ", ".join(sorted(CROP_PRESETS))
    parser.add_argument(
        "--crop",
        type=crop_arg,
        default=None,
        metavar="X,Y,W,H|NAME|none",
        help=f"crop of the frames: x,y,w,h, a preset ({presets}) or none for the whole frame "
        f"(default: {default})",
    )


#: Largest ``--batch-size`` a command takes: a step holds this many frames (or windows) at once.
MAX_BATCH_SIZE = 4096


def batch_size(text: str) -> int:
    """An argparse ``type`` for ``--batch-size``: an integer from 1 to :data:`MAX_BATCH_SIZE`."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 1 <= value <= MAX_BATCH_SIZE:
        raise argparse.ArgumentTypeError(f"expected 1 to {MAX_BATCH_SIZE}, got {text!r}")
    return value


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def check_out_dir(out_dir: Path) -> None:
    """ConfigError naming ``--out`` when it cannot be the output folder (a file, or not writable)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} is a file, not a folder: give a folder for the outputs")
    parent = _nearest_existing(out_dir)
    if parent.exists() and not parent.is_dir():
        raise ConfigError(f"--out {out_dir}: {parent} is a file, so the folder cannot be created")
    if parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out_dir}: no permission to write in {parent}")


def check_out_file(out: Path, overwrite: bool, option: str = "--out") -> None:
    """ConfigError naming ``option`` when ``out`` is a folder, exists without ``overwrite``, or
    cannot be written (a missing parent folder is fine: it is created when the file is written)."""
    if out.is_dir():
        raise ConfigError(f"{option} {out} is a folder, expected a file path")
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise ConfigError(f"{option} {out} exists; pass --overwrite to replace it")
    parent = _nearest_existing(out.parent)
    if parent.exists() and not parent.is_dir():
        raise ConfigError(f"{option} {out}: {parent} is a file, not a folder")
    if parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {out}: no permission to write in {parent}")


def prepare_out_file(out: Path, overwrite: bool, option: str = "--out") -> None:
    """:func:`check_out_file`, then remove the temporary files a killed run left beside ``out``."""
    check_out_file(out, overwrite, option)
    if out.parent.is_dir():
        remove_stale_temps(out.parent)


def check_distinct_paths(paths: dict[str, Path]) -> None:
    """ConfigError when two of ``paths`` (option name -> path) are the same file: one would replace
    the other (compared after resolving ``..`` and links, so ``a.csv`` and ``./x/../a.csv`` match)."""
    seen: dict[Path, str] = {}
    for option, path in paths.items():
        key = Path(path).resolve()
        if key in seen:
            raise ConfigError(f"{seen[key]} and {option} are the same file ({path}): give each its own path")
        seen[key] = option


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"H,W"`` -> ``(H, W)``."""
    if text is None:
        return None
    try:
        h, w = (int(v) for v in str(text).split(","))
    except ValueError:
        raise ConfigError(f"size must be H,W (two integers); got {text!r}") from None
    if h <= 0 or w <= 0:
        raise ConfigError(f"size must be positive; got {text!r}")
    return h, w
