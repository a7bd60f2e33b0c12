"""HOG settings (scikit-image's names and meanings), their validation and the output sizes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mouseemo.errors import ConfigError

#: Block normalisation methods, as scikit-image names them.
BLOCK_NORMS: tuple[str, ...] = ("L1", "L1-sqrt", "L2", "L2-Hys")


#: scikit-image's block normalisation epsilon.
EPS = 1e-5


#: Backends :func:`hog` accepts.
BACKENDS: tuple[str, ...] = ("auto", "torch", "cupy")


IntPair = int | Sequence[int]


def _pair(value: IntPair, name: str) -> tuple[int, int]:
    if isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{name} must be a positive int or a pair of them; got {value!r}")
    if isinstance(value, (int, np.integer)):
        pair = (int(value), int(value))
    else:
        try:
            items = list(value)  # type: ignore[arg-type]
        except TypeError:
            raise ConfigError(f"{name} must be a positive int or a pair of them; got {value!r}") from None
        if len(items) != 2 or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in items
        ):
            raise ConfigError(f"{name} must be a positive int or a pair of them; got {value!r}")
        pair = (int(items[0]), int(items[1]))
    if pair[0] <= 0 or pair[1] <= 0:
        raise ConfigError(f"{name} must be positive; got {value!r}")
    return pair


@dataclass(frozen=True)
class HOGParams:
    """Validated HOG parameters (scikit-image's names and meanings).

    Build with :meth:`create`, which accepts ints for the pair-valued fields and raises
    :class:`~mouseemo.errors.ConfigError` on invalid values.
    """

    orientations: int = 8
    pixels_per_cell: tuple[int, int] = (32, 32)
    cells_per_block: tuple[int, int] = (1, 1)
    block_norm: str = "L2-Hys"
    transform_sqrt: bool = True

    @classmethod
    def create(
        cls,
        orientations: int = 8,
        pixels_per_cell: IntPair = (32, 32),
        cells_per_block: IntPair = (1, 1),
        block_norm: str = "L2-Hys",
        transform_sqrt: bool = True,
    ) -> HOGParams:
        if isinstance(orientations, (bool, np.bool_)) or not isinstance(orientations, (int, np.integer)):
            raise ConfigError(f"orientations must be a positive int; got {orientations!r}")
        if orientations <= 0:
            raise ConfigError(f"orientations must be positive; got {orientations}")
        if block_norm not in BLOCK_NORMS:
            raise ConfigError(f"block_norm must be one of {', '.join(BLOCK_NORMS)}; got {block_norm!r}")
        if not isinstance(transform_sqrt, (bool, np.bool_)):
            raise ConfigError(f"transform_sqrt must be a bool; got {transform_sqrt!r}")
        return cls(
            orientations=int(orientations),
            pixels_per_cell=_pair(pixels_per_cell, "pixels_per_cell"),
            cells_per_block=_pair(cells_per_block, "cells_per_block"),
            block_norm=str(block_norm),
            transform_sqrt=bool(transform_sqrt),
        )

    def grid(self, height: int, width: int) -> tuple[int, int, int, int]:
        """``(n_cells_r, n_cells_c, n_blocks_r, n_blocks_c)`` for a frame; ConfigError if too small."""
        check_frame_size(height, width, self.pixels_per_cell, self.cells_per_block)
        (pr, pc), (br, bc) = self.pixels_per_cell, self.cells_per_block
        ncy, ncx = height // pr, width // pc
        return ncy, ncx, ncy - br + 1, ncx - bc + 1

    def output_shape(self, height: int, width: int) -> tuple[int, int, int, int, int]:
        """``(n_blocks_r, n_blocks_c, b_r, b_c, orientations)`` for one frame."""
        _, _, nby, nbx = self.grid(height, width)
        return (nby, nbx, *self.cells_per_block, self.orientations)

    def output_size(self, height: int, width: int) -> int:
        """Feature length ``D`` for one frame."""
        return math.prod(self.output_shape(height, width))


def check_frame_size(
    height: int,
    width: int,
    pixels_per_cell: IntPair = (32, 32),
    cells_per_block: IntPair = (1, 1),
) -> None:
    """Raise :class:`~mouseemo.errors.ConfigError` unless a ``height`` x ``width`` frame holds a block.

    Example:
        >>> check_frame_size(480, 640)
        >>> check_frame_size(20, 640)
        Traceback (most recent call last):
        ...
        mouseemo.errors.ConfigError: a 20x640 (h x w) frame is smaller than one HOG block ...
    """
    pr, pc = _pair(pixels_per_cell, "pixels_per_cell")
    br, bc = _pair(cells_per_block, "cells_per_block")
    if height // pr < br or width // pc < bc:
        raise ConfigError(
            f"a {height}x{width} (h x w) frame is smaller than one HOG block: it needs at least "
            f"{br * pr}x{bc * pc} pixels (cells_per_block={br, bc}, pixels_per_cell={pr, pc})"
        )


def hog_output_size(
    height: int,
    width: int,
    orientations: int = 8,
    pixels_per_cell: IntPair = (32, 32),
    cells_per_block: IntPair = (1, 1),
) -> int:
    """Length ``D`` of the HOG feature vector of a ``height`` x ``width`` frame.

    ``D = n_blocks_r * n_blocks_c * b_r * b_c * orientations`` with
    ``n_blocks = floor(size / pixels_per_cell) - cells_per_block + 1``.

    Example:
        >>> hog_output_size(480, 640)  # 15 x 20 cells of 32 px, 8 orientations
        2400
    """
    params = HOGParams.create(orientations, pixels_per_cell, cells_per_block)
    return params.output_size(height, width)
