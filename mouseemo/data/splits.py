"""Train/val/test splits that respect time: whole animals held out, or contiguous time blocks.

Neighbouring frames are near-duplicates, so frames are never split at random. Splits are returned as
per-session boolean masks and saved as frame ranges (``splits.json``) in the run directory.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mouseemo.errors import ConfigError
from mouseemo.utils.io import write_json_atomic

STAGES = ("train", "val", "test")


@dataclass
class SplitSpec:
    """How to split.

    Attributes:
        kind: ``"animals"`` (leave animals out) or ``"time"`` (contiguous blocks inside each session).
        test_animals: names, or a count chosen deterministically from ``seed``.
        val_animals: names, or a count chosen from the remaining animals.
        fold: with ``kind="animals"``, hold out the ``fold``-th animal (sorted) as test
            (leave-one-animal-out cross-validation); overrides ``test_animals``.
        num_blocks: with ``kind="time"``, blocks per session.
        val_fraction, test_fraction: fractions of blocks for val and test (``kind="time"``).
        gap_s: seconds dropped on each side of a boundary between different splits, so that no
            training frame is a near-duplicate of a test frame.
        seed: makes the choices reproducible.
    """

    kind: str = "animals"
    test_animals: int | Sequence[str] = 1
    val_animals: int | Sequence[str] = 1
    fold: int | None = None
    num_blocks: int = 10
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    gap_s: float = 2.0
    seed: int = 0


def split_animals(animals: Sequence[str], spec: SplitSpec) -> dict[str, list[str]]:
    """Assign whole animals to train/val/test."""
    names = sorted(set(animals))
    rng = np.random.default_rng(spec.seed)

    def pick(request: int | Sequence[str], pool: list[str], what: str) -> list[str]:
        if isinstance(request, int | np.integer):
            if request < 0 or request > len(pool):
                raise ConfigError(
                    f"cannot hold out {request} {what} animal(s): only {len(pool)} available {pool}"
                )
            return sorted(rng.permutation(pool)[: int(request)].tolist())
        chosen = [str(a) for a in request]
        unknown = [a for a in chosen if a not in pool]
        if unknown:
            raise ConfigError(f"{what} animal(s) {unknown} not in the dataset's animals {pool}")
        return sorted(chosen)

    if spec.fold is not None:
        if not 0 <= spec.fold < len(names):
            raise ConfigError(f"fold {spec.fold} out of range for {len(names)} animals")
        test = [names[spec.fold]]
    else:
        test = pick(spec.test_animals, names, "test")
    rest = [a for a in names if a not in test]
    val = pick(spec.val_animals, rest, "val")
    train = [a for a in rest if a not in val]
    if not train:
        raise ConfigError(
            f"no animals left for training: {len(names)} animal(s) {names}, test {test}, val {val}; "
            "use fewer held-out animals or split='time'"
        )
    return {"train": train, "val": val, "test": test}


def time_block_masks(times: np.ndarray, spec: SplitSpec, salt: int = 0) -> dict[str, np.ndarray]:
    """Split one session's frames into contiguous blocks; drop ``gap_s`` around split changes.

    Shape:
        times ``(T,)`` -> masks ``(T,)`` bool per stage.
    """
    times = np.asarray(times, dtype=np.float64)
    num = len(times)
    nb = max(3, int(spec.num_blocks))
    num_test = max(1, round(spec.test_fraction * nb)) if spec.test_fraction > 0 else 0
    num_val = max(1, round(spec.val_fraction * nb)) if spec.val_fraction > 0 else 0
    if num_test + num_val >= nb:
        raise ConfigError(f"val_fraction + test_fraction leave no training blocks ({nb} blocks)")
    rng = np.random.default_rng([spec.seed, salt])
    order = rng.permutation(nb)
    block_stage = np.zeros(nb, dtype=np.int64)  # 0 train, 1 val, 2 test
    block_stage[order[:num_test]] = 2
    block_stage[order[num_test : num_test + num_val]] = 1
    edges = np.linspace(0, num, nb + 1).round().astype(int)
    stage = np.repeat(block_stage, np.diff(edges))
    keep = np.ones(num, dtype=bool)
    for b in range(1, nb):
        if block_stage[b] != block_stage[b - 1] and 0 < edges[b] < num:
            t_edge = times[edges[b]]
            keep &= np.abs(times - t_edge) >= spec.gap_s
    return {name: (stage == i) & keep for i, name in enumerate(STAGES)}


def masks_to_ranges(mask: np.ndarray) -> list[list[int]]:
    """``[[start, stop), ...]`` runs of True in a boolean mask."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    d = np.flatnonzero(np.diff(m.astype(np.int8)))
    return [[int(a), int(b)] for a, b in zip(d[::2], d[1::2])]


def ranges_to_mask(ranges: Sequence[Sequence[int]], num: int) -> np.ndarray:
    mask = np.zeros(num, dtype=bool)
    for a, b in ranges:
        mask[a:b] = True
    return mask


def save_splits(
    path: str | os.PathLike,
    masks: dict[str, dict[str, np.ndarray]],
    spec: SplitSpec,
    extra: dict | None = None,
) -> None:
    """Write ``{stage: {session: [[start, stop), ...]]}}`` plus the spec as JSON (atomically)."""
    doc = {
        "spec": spec.__dict__
        | {"test_animals": _plain(spec.test_animals), "val_animals": _plain(spec.val_animals)}
    }
    doc.update(extra or {})
    for stage in STAGES:
        doc[stage] = {name: masks_to_ranges(m[stage]) for name, m in masks.items() if m[stage].any()}
    write_json_atomic(path, doc)


def _plain(v):
    return v if isinstance(v, int | np.integer) else list(v)
