"""Exact properties of the train/val/test splits (whole animals, or contiguous time blocks)."""

import json

import numpy as np
import pytest

from mouseemo.data.splits import (
    SplitSpec,
    masks_to_ranges,
    ranges_to_mask,
    save_splits,
    split_animals,
    time_block_masks,
)
from mouseemo.errors import ConfigError

ANIMALS = ["m3", "m1", "m5", "m2", "m4", "m1"]  # unsorted, one repeated


def test_spec_defaults():
    s = SplitSpec()
    assert (s.kind, s.test_animals, s.val_animals, s.fold) == ("animals", 1, 1, None)
    assert (s.num_blocks, s.val_fraction, s.test_fraction, s.gap_s, s.seed) == (10, 0.1, 0.2, 2.0, 0)


def test_split_animals_counts_are_a_seeded_partition():
    spec = SplitSpec(test_animals=2, val_animals=1, seed=3)
    out = split_animals(ANIMALS, spec)
    rng = np.random.default_rng(3)
    names = ["m1", "m2", "m3", "m4", "m5"]
    test = sorted(rng.permutation(names)[:2].tolist())
    rest = [a for a in names if a not in test]
    val = sorted(rng.permutation(rest)[:1].tolist())
    assert out == {"test": test, "val": val, "train": [a for a in rest if a not in val]}
    assert out == {"train": ["m2", "m4"], "val": ["m1"], "test": ["m3", "m5"]}
    assert split_animals(ANIMALS, spec) == out  # reproducible
    assert split_animals(ANIMALS, SplitSpec(test_animals=2, val_animals=1, seed=4)) != out
    # numpy integers count too; zero held out is allowed
    assert split_animals(ANIMALS, SplitSpec(test_animals=np.int64(0), val_animals=0)) == {
        "train": ["m1", "m2", "m3", "m4", "m5"],
        "val": [],
        "test": [],
    }


def test_split_animals_by_name_and_fold():
    out = split_animals(ANIMALS, SplitSpec(test_animals=("m5", "m2"), val_animals=["m1"]))
    assert out == {"train": ["m3", "m4"], "val": ["m1"], "test": ["m2", "m5"]}
    for fold, name in enumerate(["m1", "m2", "m3", "m4", "m5"]):
        out = split_animals(ANIMALS, SplitSpec(fold=fold, test_animals=["m1"], val_animals=0))
        assert out["test"] == [name]
        assert out["train"] == [a for a in ["m1", "m2", "m3", "m4", "m5"] if a != name]


@pytest.mark.parametrize(
    "spec, message",
    [
        (SplitSpec(fold=5), "fold 5 out of range for 5 animals"),
        (SplitSpec(fold=-1), "fold -1 out of range for 5 animals"),
        (SplitSpec(test_animals=6), r"cannot hold out 6 test animal\(s\): only 5 available"),
        (SplitSpec(test_animals=-1), r"cannot hold out -1 test animal\(s\)"),
        (SplitSpec(test_animals=1, val_animals=5), r"cannot hold out 5 val animal\(s\): only 4 available"),
        (SplitSpec(test_animals=["m9"]), r"test animal\(s\) \['m9'\] not in the dataset's animals"),
        (SplitSpec(test_animals=["m1"], val_animals=["m1"]), r"val animal\(s\) \['m1'\] not in"),
        (
            SplitSpec(test_animals=2, val_animals=3),
            r"no animals left for training: 5 animal.*; use fewer held-out animals or split='time'$",
        ),
    ],
)
def test_split_animals_errors(spec, message):
    with pytest.raises(ConfigError, match=message):
        split_animals(ANIMALS, spec)


def test_split_animals_edges_allowed():
    assert split_animals(ANIMALS, SplitSpec(test_animals=4, val_animals=0))["train"].__len__() == 1
    assert split_animals(ANIMALS, SplitSpec(fold=4, val_animals=3))["test"] == ["m5"]


def reference_time_masks(times, spec, salt):
    """The rule written out loop by loop."""
    nb = max(3, spec.num_blocks)
    n_test = max(1, round(spec.test_fraction * nb)) if spec.test_fraction > 0 else 0
    n_val = max(1, round(spec.val_fraction * nb)) if spec.val_fraction > 0 else 0
    order = list(np.random.default_rng([spec.seed, salt]).permutation(nb))
    stage_of_block = [
        "test" if b in order[:n_test] else "val" if b in order[n_test : n_test + n_val] else "train"
        for b in range(nb)
    ]
    num = len(times)
    edges = [int(round(num * i / nb)) for i in range(nb + 1)]
    out = {s: np.zeros(num, dtype=bool) for s in ("train", "val", "test")}
    for t in range(num):
        b = max(i for i in range(nb) if edges[i] <= t)
        dropped = any(
            stage_of_block[k] != stage_of_block[k - 1]
            and 0 < edges[k] < num
            and abs(times[t] - times[edges[k]]) < spec.gap_s
            for k in range(1, nb)
        )
        out[stage_of_block[b]][t] = not dropped
    return out


@pytest.mark.parametrize(
    "num, spec, salt",
    [
        (100, SplitSpec(kind="time", num_blocks=10, gap_s=2.0, seed=0), 0),
        (
            97,
            SplitSpec(kind="time", num_blocks=7, val_fraction=0.3, test_fraction=0.25, gap_s=3.0, seed=5),
            2,
        ),
        (50, SplitSpec(kind="time", num_blocks=2, val_fraction=0.0, test_fraction=0.2, gap_s=0.0), 1),
        (60, SplitSpec(kind="time", num_blocks=6, val_fraction=0.2, test_fraction=0.0, gap_s=1.0), 0),
        (40, SplitSpec(kind="time", num_blocks=5, val_fraction=0.1, test_fraction=0.1, gap_s=1.5), 3),
        # fewer frames than blocks: empty blocks, boundaries at the first and last frame
        *[
            (n, SplitSpec(kind="time", num_blocks=5, gap_s=0.6, seed=s), s)
            for n in (1, 2, 3)
            for s in range(4)
        ],
        (3, SplitSpec(kind="time", num_blocks=3, val_fraction=0.2, test_fraction=0.2, gap_s=0.6, seed=0), 0),
    ],
)
def test_time_block_masks_against_reference(num, spec, salt):
    times = np.arange(num) * 0.5
    out = time_block_masks(times, spec, salt=salt)
    ref = reference_time_masks(times, spec, salt)
    for stage in ("train", "val", "test"):
        assert out[stage].dtype == bool
        np.testing.assert_array_equal(out[stage], ref[stage], err_msg=stage)
    assert not (out["train"] & out["val"]).any() and not (out["train"] & out["test"]).any()


def test_time_block_masks_exact_small_case():
    spec = SplitSpec(kind="time", num_blocks=3, val_fraction=0.2, test_fraction=0.2, gap_s=1.0, seed=0)
    out = time_block_masks(np.arange(9.0), spec)
    assert {s: masks_to_ranges(m) for s, m in out.items()} == {
        s: masks_to_ranges(m) for s, m in reference_time_masks(np.arange(9.0), spec, 0).items()
    }
    # one block each; the frame at each boundary between stages is dropped (|t - t_edge| < 1)
    assert sum(m.sum() for m in out.values()) == 7
    assert sorted(len(masks_to_ranges(m)) for m in out.values()) == [1, 1, 1]
    # salt 0 is the default; another salt changes the draw for another session
    ten = SplitSpec(kind="time", num_blocks=10, seed=0)
    same = time_block_masks(np.arange(90.0), ten, salt=0)
    assert not np.array_equal(same["test"], time_block_masks(np.arange(90.0), ten, salt=1)["test"])
    for stage, mask in time_block_masks(np.arange(90.0), ten).items():
        np.testing.assert_array_equal(mask, same[stage])
    draws = {tuple(np.flatnonzero(time_block_masks(np.arange(90.0), spec, salt=s)["test"])) for s in range(6)}
    assert len(draws) > 1


def test_time_block_masks_gap_kept_exactly_at_gap():
    """A frame exactly gap_s away from a boundary is kept; closer ones go."""
    spec = SplitSpec(kind="time", num_blocks=3, val_fraction=0.2, test_fraction=0.2, gap_s=2.0, seed=0)
    times = np.arange(30.0)
    out = time_block_masks(times, spec)
    dropped = np.flatnonzero(~(out["train"] | out["val"] | out["test"]))
    assert dropped.tolist() == [9, 10, 11, 19, 20, 21]


def test_time_block_masks_unsigned_times():
    """Times are compared as float64: unsigned frame numbers do not wrap around below a boundary."""
    spec = SplitSpec(kind="time", num_blocks=3, val_fraction=0.2, test_fraction=0.2, gap_s=2.0, seed=0)
    out = time_block_masks(np.arange(30, dtype=np.uint32), spec)
    dropped = np.flatnonzero(~(out["train"] | out["val"] | out["test"]))
    assert dropped.tolist() == [9, 10, 11, 19, 20, 21]


def test_time_block_masks_no_training_blocks():
    with pytest.raises(ConfigError, match=r"leave no training blocks \(3 blocks\)"):
        time_block_masks(
            np.arange(10.0), SplitSpec(kind="time", num_blocks=3, val_fraction=0.5, test_fraction=0.2)
        )
    with pytest.raises(ConfigError, match=r"\(4 blocks\)"):
        time_block_masks(
            np.arange(10.0), SplitSpec(kind="time", num_blocks=4, val_fraction=0.5, test_fraction=0.5)
        )


def test_ranges_round_trip():
    mask = np.array([1, 1, 0, 0, 1, 0, 1, 1, 1], dtype=bool)
    assert masks_to_ranges(mask) == [[0, 2], [4, 5], [6, 9]]
    assert all(type(v) is int for r in masks_to_ranges(mask) for v in r)
    assert masks_to_ranges(np.zeros(4, bool)) == []
    assert masks_to_ranges([0.5, 0.0, 3.0]) == [[0, 1], [2, 3]]  # truthy values count
    assert masks_to_ranges(np.ones(3, bool)) == [[0, 3]]
    np.testing.assert_array_equal(ranges_to_mask([[0, 2], [4, 5], [6, 9]], 9), mask)
    assert ranges_to_mask([], 2).dtype == bool
    np.testing.assert_array_equal(ranges_to_mask([], 2), [False, False])


def test_save_splits_writes_ranges_and_spec(tmp_path):
    spec = SplitSpec(test_animals=("b",), val_animals=np.int64(0))
    masks = {
        "a/s1": {
            "train": np.array([1, 1, 0, 1], bool),
            "val": np.zeros(4, bool),
            "test": np.array([0, 0, 1, 0], bool),
        },
        "b/s1": {"train": np.zeros(2, bool), "val": np.zeros(2, bool), "test": np.ones(2, bool)},
    }
    path = tmp_path / "splits.json"
    save_splits(path, masks, spec, extra={"animals": ["a", "b"]})
    doc = json.loads(path.read_text())
    assert doc["spec"] == {
        "kind": "animals",
        "test_animals": ["b"],
        "val_animals": 0,
        "fold": None,
        "num_blocks": 10,
        "val_fraction": 0.1,
        "test_fraction": 0.2,
        "gap_s": 2.0,
        "seed": 0,
    }
    assert doc["animals"] == ["a", "b"]
    assert doc["train"] == {"a/s1": [[0, 2], [3, 4]]}
    assert doc["val"] == {}
    assert doc["test"] == {"a/s1": [[2, 3]], "b/s1": [[0, 2]]}
    # names held in an array (or a config list) are written as a plain list
    save_splits(tmp_path / "array.json", masks, SplitSpec(test_animals=np.array(["b"]), val_animals=[]))
    assert json.loads((tmp_path / "array.json").read_text())["spec"]["test_animals"] == ["b"]
    save_splits(tmp_path / "plain.json", masks, SplitSpec())
    assert set(json.loads((tmp_path / "plain.json").read_text())) == {"spec", "train", "val", "test"}
