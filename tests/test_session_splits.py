import json

import numpy as np
import pytest

from mouseemo.data.session import Session, discover_sessions, read_truth_frames
from mouseemo.data.splits import SplitSpec, masks_to_ranges, ranges_to_mask, split_animals, time_block_masks
from mouseemo.errors import ConfigError, DataError
from tests.helpers import write_dataset, write_session


def test_discover_folders_and_manifest(tmp_path):
    write_dataset(tmp_path / "ds", num_mice=2, num_frames=40)
    sessions = discover_sessions(tmp_path / "ds")
    assert [s.name for s in sessions] == ["m01/s01", "m02/s01"]
    assert sessions[0].video.name == "face.mp4" and sessions[0].fps == 20.0
    assert sessions[0].events_path is not None and sessions[0].suite2p is None
    (tmp_path / "ds" / "manifest.csv").write_text("animal,session,path\nA,x,m02/s01\n")
    only = discover_sessions(tmp_path / "ds")
    assert [(s.animal, s.session) for s in only] == [("A", "x")]
    # a single session folder is a dataset of one
    assert len(discover_sessions(tmp_path / "ds" / "m01" / "s01")) == 1


def test_discover_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        discover_sessions(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no sessions"):
        discover_sessions(tmp_path / "empty")
    s = tmp_path / "m01" / "s01"
    s.mkdir(parents=True)
    (s / "session.json").write_text(json.dumps({"animal": "m01"}))
    with pytest.raises(DataError, match="no face video"):
        Session.open(s)


def test_truth_frames(tmp_path):
    path = write_session(tmp_path, num_frames=45)
    cols = read_truth_frames(path / "truth" / "frames.csv")
    assert cols["label"].tolist()[:21] == [0] * 20 + [1]
    assert len(cols["time_s"]) == 45


def test_split_animals_deterministic_and_disjoint():
    animals = ["m01", "m02", "m03", "m04", "m05"]
    a = split_animals(animals, SplitSpec(test_animals=2, val_animals=1, seed=3))
    b = split_animals(animals, SplitSpec(test_animals=2, val_animals=1, seed=3))
    assert a == b
    assert len(a["test"]) == 2 and len(a["val"]) == 1 and len(a["train"]) == 2
    assert not set(a["test"]) & set(a["train"]) and not set(a["val"]) & set(a["train"])
    fold = split_animals(animals, SplitSpec(fold=4, val_animals=0))
    assert fold["test"] == ["m05"] and len(fold["train"]) == 4
    with pytest.raises(ConfigError, match="not in the dataset"):
        split_animals(animals, SplitSpec(test_animals=["m09"]))
    with pytest.raises(ConfigError, match="no animals left"):
        split_animals(["m01", "m02"], SplitSpec(test_animals=1, val_animals=1))


def test_time_blocks_have_gaps():
    fps = 20.0
    t = np.arange(2000) / fps
    spec = SplitSpec(kind="time", num_blocks=10, val_fraction=0.1, test_fraction=0.2, gap_s=2.0, seed=1)
    m = time_block_masks(t, spec)
    stacked = np.stack([m["train"], m["val"], m["test"]])
    assert stacked.sum(0).max() == 1  # no frame in two splits
    assert m["test"].sum() > 0 and m["val"].sum() > 0
    train_t, test_t = t[m["train"]], t[m["test"]]
    gaps = np.abs(train_t[:, None] - test_t[None, :]).min()
    assert gaps >= 2.0 - 1e-9
    for mask in m.values():
        assert masks_to_ranges(mask) and np.array_equal(ranges_to_mask(masks_to_ranges(mask), len(t)), mask)
