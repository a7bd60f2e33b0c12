"""`mouseemo predict --prototypes --neutral own`: prototypes carried over onto each video's own neutral."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mouseemo.cli import main
from mouseemo.data.events import read_events
from mouseemo.data.video import VideoReader, reference_indices, session_reference
from mouseemo.inference.inputs import resolve_inputs
from mouseemo.inference.prototypes import build_from_videos
from mouseemo.models.prototypes_io import Prototypes
from mouseemo.ops import hog
from mouseemo.ops.similarity import pearson_similarity
from tests.helpers import label_frames, write_session, write_video
from tests.test_predict import scores_of

SIZE = (64, 96)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("neutral")
    a = write_session(root / "data", animal="m01", num_frames=120, size=SIZE, seed=1)
    b = write_session(root / "data", animal="m02", num_frames=120, size=SIZE, seed=2)
    # another animal: the same expressions on a face with a bright static mark (its identity)
    with VideoReader(b / "face.mp4") as vr:
        frames = vr.read()
    frames[:, 10:40, 20:45] = np.clip(frames[:, 10:40, 20:45].astype(int) + 60, 0, 255).astype(np.uint8)
    write_video(b / "face.mp4", frames, 20.0)
    protos = root / "protos.npz"
    build_from_videos(resolve_inputs([str(a)], None, True), hog={"pixels_per_cell": 16}, k=5).save(protos)
    plain = write_video(root / "plain.mp4", label_frames(np.arange(60) % 7, SIZE, seed=3), 20.0)
    return {"a": a, "b": b, "protos": protos, "plain": plain, "root": root}


def _predict(*args) -> int:
    return main(["predict", *[str(a) for a in args], "--no-plot", "--quiet"])


def _expected_scores(session: Path, protos: Prototypes, mask_fn) -> tuple[np.ndarray, int]:
    """Scores recomputed from scratch: the mean HOG of the baseline frames replaces the file's neutral."""
    with VideoReader(session / "face.mp4") as vr:
        frames = vr.read()
    t = np.arange(len(frames)) / 20.0
    idx = np.flatnonzero(mask_fn(t))
    idx = idx[reference_indices(len(idx), 300)]
    feats = hog(torch.from_numpy(frames), **protos.hog).double()
    own = feats[idx].mean(dim=0)
    base = torch.as_tensor(protos.matrix).double()
    k = protos.names.index("neutral")
    matrix = (base - base[k] + own).float()
    return pearson_similarity(feats.float(), matrix).numpy(), len(idx)


def test_own_neutral_is_the_videos_baseline(world, tmp_path):
    protos = Prototypes.load(world["protos"])
    events = read_events(world["b"] / "events.csv")
    assert (
        _predict(world["b"], "--prototypes", world["protos"], "--neutral", "own", "--out", tmp_path / "own")
        == 0
    )
    got = scores_of(tmp_path / "own" / "m02_s01.csv", "similarity")
    want, n = _expected_scores(world["b"], protos, events.baseline_mask)
    np.testing.assert_allclose(got, want, atol=2e-5)
    s = json.loads((tmp_path / "own" / "m02_s01.json").read_text())
    assert s["model"]["neutral"] == {"source": "baseline frames of its events", "frames": n}
    assert n == 20  # the first block of 20 frames is the only neutral window
    # the file's own neutral gives other scores, and the file's default is unchanged
    assert _predict(world["b"], "--prototypes", world["protos"], "--out", tmp_path / "file") == 0
    file_scores = scores_of(tmp_path / "file" / "m02_s01.csv", "similarity")
    assert np.abs(file_scores - got).max() > 0.01
    assert json.loads((tmp_path / "file" / "m02_s01.json").read_text())["model"]["neutral"] == {
        "source": "prototypes file"
    }


def test_neutral_until_s(world, tmp_path):
    protos = Prototypes.load(world["protos"])
    out = tmp_path / "until"
    code = _predict(world["b"], "--prototypes", world["protos"], "--neutral", "own", "--neutral-until-s", "0.5",
                    "--out", out)  # fmt: skip
    assert code == 0
    want, n = _expected_scores(world["b"], protos, lambda t: t < 0.5)
    np.testing.assert_allclose(scores_of(out / "m02_s01.csv", "similarity"), want, atol=2e-5)
    assert n == 10
    assert (
        json.loads((out / "m02_s01.json").read_text())["model"]["neutral"]["source"] == "frames before 0.5 s"
    )


def test_no_baseline_falls_back_to_the_median_frame_with_a_warning(world, tmp_path, capsys):
    protos = Prototypes.load(world["protos"])
    out = tmp_path / "plain"
    assert main(["predict", str(world["plain"]), "--prototypes", str(world["protos"]), "--neutral", "own",
                 "--no-plot", "--out", str(out)]) == 0  # fmt: skip
    s = json.loads((out / "plain.json").read_text())
    assert s["model"]["neutral"]["source"] == "median frame (no baseline)"
    assert any("median frame" in w and "has no events" in w for w in s["warnings"])
    assert "median frame" in capsys.readouterr().err
    with VideoReader(world["plain"]) as vr:
        frames = vr.read()
    ref = session_reference(frames, 300)
    feats = hog(torch.from_numpy(frames), **protos.hog).double()
    own = hog(torch.from_numpy(ref)[None], **protos.hog).double()[0]
    base = torch.as_tensor(protos.matrix).double()
    matrix = (base - base[0] + own).float()
    np.testing.assert_allclose(
        scores_of(out / "plain.csv", "similarity"),
        pearson_similarity(feats.float(), matrix).numpy(),
        atol=2e-5,
    )


def test_parallel_videos_keep_their_own_neutral(world, tmp_path):
    common = ["--prototypes", world["protos"], "--neutral", "own", "--batch-size", "32"]
    assert _predict(world["a"], world["b"], *common, "--out", tmp_path / "one", "--workers", "1") == 0
    assert _predict(world["a"], world["b"], *common, "--out", tmp_path / "two", "--workers", "2") == 0
    for stem in ("m01_s01", "m02_s01"):
        assert (tmp_path / "one" / f"{stem}.csv").read_bytes() == (
            tmp_path / "two" / f"{stem}.csv"
        ).read_bytes()


def test_bad_neutral_options(world, tmp_path, capsys):
    assert (
        _predict(
            world["b"], "--prototypes", world["protos"], "--neutral-until-s", "1", "--out", tmp_path / "x"
        )
        == 2
    )
    assert "--neutral-until-s needs --neutral own" in capsys.readouterr().err
    assert _predict(world["b"], "--prototypes", world["protos"], "--neutral", "own", "--neutral-until-s", "-1",
                    "--out", tmp_path / "y") == 2  # fmt: skip
    assert "positive number of seconds" in capsys.readouterr().err
    # a file without a neutral prototype cannot be carried over
    p = Prototypes.load(world["protos"])
    keep = [i for i, n in enumerate(p.names) if n != "neutral"]
    no_neutral = Prototypes(
        names=[p.names[i] for i in keep], matrix=p.matrix[keep], hog=p.hog, frame_size=p.frame_size
    )
    no_neutral.save(tmp_path / "nn.npz")
    assert (
        _predict(world["b"], "--prototypes", tmp_path / "nn.npz", "--neutral", "own", "--out", tmp_path / "z")
        == 2
    )
    assert "needs a 'neutral' prototype" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "z").exists()
