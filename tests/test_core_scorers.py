"""Scorer logic with exact values: labels, confidence, description, and a checkpoint's batches,
temporal windows and references (a tiny in-memory module stands in for a loaded checkpoint)."""

from types import SimpleNamespace

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from mouseemo.errors import ConfigError, DataError
from mouseemo.inference.scorers import DEFAULT_MIN_CONFIDENCE, CheckpointScorer, Scorer, load_scorer


class Recorder(pl.LightningModule):
    """Scores = per-frame means of the input (and of the reference when one is given)."""

    def __init__(self, k=3, clip_length=1, margin=None, tuple_out=False):
        super().__init__()
        self.k = k
        self.clip_length = clip_length
        self.batches = []
        self.tuple_out = tuple_out
        if margin is not None:
            self.save_hyperparameters({"margin": margin})

    def on_after_batch_transfer(self, batch, dataloader_idx):
        self.batches.append({k: v.clone() for k, v in batch.items()})
        self.indices = [dataloader_idx]
        return batch

    def forward(self, x):
        m = x.float().flatten(1).mean(1, keepdim=True)
        return torch.cat([m * (i + 1) for i in range(self.k)], dim=1)

    def predict_step(self, batch, batch_idx):
        self.indices.append(batch_idx)
        key = "frames" if "frames" in batch else "image"
        out = self(batch[key])
        if "reference" in batch:
            out = out + batch["reference"].float().flatten(1).mean(1, keepdim=True)
        return (out, None) if self.tuple_out else out


class NoPredict(Recorder):
    predict_step = pl.LightningModule.predict_step

    def __init__(self, **kw):
        super().__init__(**kw)


def loaded(module, prefix="prob", reference=None, clip_step=1, image_size=None, **extra):
    names = [f"c{i}" for i in range(module.k)]
    return SimpleNamespace(
        module=module,
        path="m.ckpt",
        score_names=names,
        score_prefix=prefix,
        crop=None,
        image_size=image_size,
        classes=names,
        clip_step=clip_step,
        reference=reference,
        **extra,
    )


def test_base_scorer_columns_labels_confidence():
    s = Scorer("p.npz", ["neutral", "fear", "joy"], "similarity", (1, 2, 3, 4), (8, 6), "cpu", margin=0.1)
    assert s.columns == ["similarity_neutral", "similarity_fear", "similarity_joy"]
    assert s.confidence_measure == "best minus second-best similarity"
    assert s.input_size(20, 30) == (8, 6)
    scores = torch.tensor([[0.5, 0.55, 0.2], [0.1, 0.9, 0.3], [0.2, 0.1, 0.4]])
    # margin 0.1 toward neutral: frame 0's best beats neutral by only 0.05
    assert s.labels(scores).tolist() == [0, 1, 2]
    np.testing.assert_allclose(s.confidence(scores), [0.05, 0.6, 0.2], atol=1e-7)
    assert s.describe() == {
        "kind": "",
        "path": "p.npz",
        "score_prefix": "similarity",
        "names": ["neutral", "fear", "joy"],
        "crop": [1, 2, 3, 4],
        "resize": [8, 6],
        "margin": 0.1,
    }
    p = Scorer("c.ckpt", ["a", "b"], "prob", None, None, "cpu")
    assert p.confidence_measure == "highest class probability" and p.margin == 0.0
    assert p.input_size(20, 30) == (20, 30)
    probs = torch.tensor([[0.3, 0.7], [0.6, 0.4]])
    assert p.labels(probs).tolist() == [1, 0]
    np.testing.assert_allclose(p.confidence(probs), [0.7, 0.6])
    assert p.describe()["margin"] is None and p.describe()["crop"] is None and p.describe()["resize"] is None
    two = Scorer("p.npz", ["neutral", "fear"], "similarity", None, None, "cpu")
    np.testing.assert_allclose(two.confidence(torch.tensor([[0.25, 0.75]])), [0.5])
    one = Scorer("p.npz", ["neutral"], "similarity", None, None, "cpu")
    np.testing.assert_allclose(one.confidence(torch.tensor([[0.25], [0.5]])), [0.25, 0.5])
    assert DEFAULT_MIN_CONFIDENCE == {"prob": 0.5, "similarity": 0.01}


def test_prepare_resizes_and_for_frames_checks():
    s = Scorer("p.npz", ["a"], "prob", None, (2, 3), "cpu")
    frames = np.arange(2 * 4 * 6, dtype=np.uint8).reshape(2, 4, 6)
    out = s.prepare(frames)
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    assert out[0, 0, 0] == round(frames[0, :2, :2].mean())
    assert Scorer("p.npz", ["a"], "prob", None, None, "cpu").prepare(frames) is frames
    copy = s.for_frames(frames[0])
    assert copy is not s and copy.notes == []
    for bad in (
        np.zeros((2, 4, 6), np.float32),
        np.zeros((0, 4, 6), np.uint8),
        np.zeros((1, 1, 4, 6), np.uint8),
    ):
        with pytest.raises(
            DataError, match=r"live: expected uint8 frames \(T, H, W\) or one frame \(H, W\); got"
        ):
            s.for_frames(bad, source="live")
    with pytest.raises(DataError, match="given frames: expected"):
        s.for_frames(np.zeros(3, np.uint8))


class Bare(pl.LightningModule):
    """A module without clip_length."""

    k = 2

    def forward(self, x):
        return x.float().flatten(1)[:, :2]


def test_checkpoint_scorer_defaults_for_missing_fields():
    bare = SimpleNamespace(
        module=Bare(),
        path="b.ckpt",
        score_names=["a", "b"],
        score_prefix="prob",
        crop=(0, 0, 4, 4),
        image_size=None,
        classes=["a", "b"],
    )
    s = CheckpointScorer(bare, "cpu")
    assert (s.clip_length, s.clip_step, s.reference_kind, s.reference_frames, s.crop) == (
        1,
        1,
        None,
        300,
        (0, 0, 4, 4),
    )


def test_checkpoint_scorer_attributes():
    s = CheckpointScorer(loaded(Recorder(margin=0.2), prefix="similarity", reference_frames=None), "cpu")
    assert s.margin == 0.2 and s.kind == "checkpoint" and s.clip_length == 1 and s.clip_step == 1
    assert s.reference_frames == 300 and s.reference_kind is None and not s.needs_reference
    assert s.target == Recorder.__module__ + ".Recorder"
    assert CheckpointScorer(loaded(Recorder(margin=0.2)), "cpu", margin=0.05).margin == 0.05
    assert CheckpointScorer(loaded(Recorder()), "cpu").margin == 0.0
    for clip, expected in ((4, 4), (True, 1), (2.0, 1), (1, 1)):
        assert CheckpointScorer(loaded(Recorder(clip_length=clip)), "cpu").clip_length == expected
    assert CheckpointScorer(loaded(Recorder(), clip_step=None), "cpu").clip_step == 1
    assert CheckpointScorer(loaded(Recorder(), clip_step=0), "cpu").clip_step == 1
    assert CheckpointScorer(loaded(Recorder(), clip_step=3), "cpu").clip_step == 3
    s = CheckpointScorer(loaded(Recorder(), reference="median", reference_frames=7), "cpu")
    assert s.reference_frames == 7 and s.needs_reference
    d = s.describe()
    assert d["module"] == Recorder.__module__ + ".Recorder" and d["classes"] == ["c0", "c1", "c2"]
    assert d["clip_length"] == 1 and d["reference"] == {"kind": "median", "frames": 7}
    assert CheckpointScorer(loaded(Recorder()), "cpu").describe()["reference"] is None


def test_run_image_batches_and_softmax():
    rec = Recorder()
    s = CheckpointScorer(loaded(rec), "cpu")
    x = torch.full((2, 4, 5), 10, dtype=torch.uint8)
    out = s.stream()(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([[10.0, 20.0, 30.0]] * 2))
    assert list(rec.batches[0]) == ["image"] and rec.batches[0]["image"].shape == (2, 1, 4, 5)
    assert rec.indices == [0, 0]
    # without its own predict_step: forward, then softmax for probabilities
    no = CheckpointScorer(loaded(NoPredict()), "cpu")
    out = no.stream()(torch.full((1, 2, 2), 1, dtype=torch.uint8))
    torch.testing.assert_close(out, torch.tensor([1.0, 2.0, 3.0]).softmax(0)[None])
    sim = CheckpointScorer(loaded(NoPredict(), prefix="similarity"), "cpu")
    torch.testing.assert_close(
        sim.stream()(torch.full((1, 2, 2), 1, dtype=torch.uint8)), torch.tensor([[1.0, 2.0, 3.0]])
    )
    tup = CheckpointScorer(loaded(Recorder(tuple_out=True)), "cpu")
    torch.testing.assert_close(
        tup.stream()(torch.full((1, 2, 2), 2, dtype=torch.uint8)), torch.tensor([[2.0, 4.0, 6.0]])
    )


def test_temporal_windows_span_clip_step_and_carry_over():
    rec = Recorder(clip_length=3)
    s = CheckpointScorer(loaded(rec, clip_step=2), "cpu")
    score = s.stream()
    frames = torch.arange(1, 8, dtype=torch.uint8)[:, None, None].expand(7, 2, 2).contiguous()
    score(frames[:3])
    score(frames[3:])
    first, second = rec.batches[0]["frames"], rec.batches[1]["frames"]
    assert first.shape == (3, 3, 1, 2, 2)
    # frame i sees frames i-4, i-2, i (the first frame repeated before the start)
    assert first[:, :, 0, 0, 0].tolist() == [[1, 1, 1], [1, 1, 2], [1, 1, 3]]
    assert second[:, :, 0, 0, 0].tolist() == [[1, 2, 4], [1, 3, 5], [2, 4, 6], [3, 5, 7]]
    # a per-frame reference reaches the model with the windows
    rec3 = Recorder(clip_length=2)
    out = CheckpointScorer(loaded(rec3), "cpu").stream()(
        frames[:2], torch.full((2, 2, 2), 9, dtype=torch.uint8)
    )
    assert rec3.batches[0]["reference"].shape == (2, 1, 2, 2)
    torch.testing.assert_close(out[:, 0], torch.tensor([10.0, 10.5]))
    rec2 = Recorder(clip_length=2)
    CheckpointScorer(loaded(rec2), "cpu").stream()(frames[:3])
    assert rec2.batches[0]["frames"][:, :, 0, 0, 0].tolist() == [[1, 1], [1, 2], [2, 3]]


def test_session_reference_from_frames():
    rec = Recorder()
    s = CheckpointScorer(loaded(rec, reference="median", reference_frames=3), "cpu")
    frames = np.stack([np.full((4, 4), v, np.uint8) for v in (10, 20, 90, 80, 100)])
    video = s.for_frames(frames)
    assert video._reference.shape == (1, 1, 4, 4) and video._reference.dtype == torch.uint8
    # median of frames 0, 2, 4 (three spread evenly)
    assert int(video._reference[0, 0, 0, 0]) == 90
    out = video.stream()(torch.full((2, 4, 4), 1, dtype=torch.uint8))
    torch.testing.assert_close(out, torch.tensor([[91.0, 92.0, 93.0]] * 2))
    assert rec.batches[-1]["reference"].shape == (2, 1, 4, 4)
    # a frame of another size (the size probe) gets a mid-gray reference
    out = video.stream()(torch.full((1, 2, 2), 1, dtype=torch.uint8))
    torch.testing.assert_close(out, torch.tensor([[129.0, 130.0, 131.0]]))
    gray = rec.batches[-1]["reference"]
    assert gray.shape == (1, 1, 2, 2) and gray.dtype == torch.uint8
    # an explicit per-frame reference wins
    ref = torch.full((1, 4, 4), 5, dtype=torch.uint8)
    torch.testing.assert_close(
        video.stream()(torch.full((1, 4, 4), 1, dtype=torch.uint8), ref), torch.tensor([[6.0, 7.0, 8.0]])
    )
    assert rec.batches[-1]["reference"].shape == (1, 1, 4, 4)
    plain = CheckpointScorer(loaded(Recorder()), "cpu").for_frames(frames)
    assert plain._reference is None
    trial = CheckpointScorer(loaded(Recorder(), reference="trial"), "cpu")
    with pytest.raises(
        ConfigError, match="compares frames with a 'trial' reference, which needs the stimulus onsets"
    ):
        trial.for_frames(frames)


def test_session_reference_from_frames_is_resized_to_the_model_input():
    """begin_frames resizes the picked frames (area interpolation) before taking their median."""
    s = CheckpointScorer(loaded(Recorder(), reference="median", reference_frames=3, image_size=(2, 2)), "cpu")
    frames = np.zeros((3, 4, 4), np.uint8)
    frames[:, :2, :2] = 40  # one 2x2 quadrant per output pixel
    frames[:, 2:, 2:] = 200
    ref = s.for_frames(frames)._reference
    assert ref.shape == (1, 1, 2, 2)
    assert ref[0, 0].tolist() == [[40, 0], [0, 200]]


def test_check_errors():
    s = CheckpointScorer(loaded(Recorder(k=2)), "cpu")
    with pytest.raises(
        DataError, match=r"m.ckpt: the model gives scores of shape \(1, 2\), expected \(B, 3\)"
    ):
        s.names = ["a", "b", "c"]
        s.check(4, 5, "v.mp4")
    s.names = ["a", "b"]
    s.check(4, 5, "v.mp4")

    class Broken(Recorder):
        def forward(self, x):
            raise RuntimeError("size mismatch\nmore")

    with pytest.raises(
        ConfigError, match=r"m.ckpt cannot score 5x4 \(w x h\) frames of v.mp4: RuntimeError: size mismatch$"
    ):
        CheckpointScorer(loaded(Broken()), "cpu").check(4, 5, "v.mp4")

    class Sized(Recorder):
        def _check_frame_size(self, size):
            raise ConfigError(f"needs 8x8, got {size}")

    with pytest.raises(ConfigError, match=r"m.ckpt does not fit v.mp4: needs 8x8, got \(4, 5\)"):
        CheckpointScorer(loaded(Sized()), "cpu").check(4, 5, "v.mp4")

    class Refuses(Recorder):
        def forward(self, x):
            raise ConfigError("own message")

    with pytest.raises(ConfigError, match="^own message$"):
        CheckpointScorer(loaded(Refuses()), "cpu").check(4, 5, "v.mp4")
    rec = Recorder(clip_length=3)
    CheckpointScorer(loaded(rec, image_size=(6, 7)), "cpu").check(4, 5, "v.mp4")
    assert rec.batches[0]["frames"].shape == (1, 3, 1, 6, 7)
    assert int(rec.batches[0]["frames"][0, 0, 0, 0, 0]) == 128
    for clip, shape in ((1, (1, 1, 4, 5)), (2, (1, 2, 1, 4, 5))):
        rec = Recorder(clip_length=clip)
        CheckpointScorer(loaded(rec), "cpu").check(4, 5, "v.mp4")
        (probe,) = rec.batches[0].values()
        assert probe.shape == shape and probe.dtype == torch.uint8

    class Silent(Recorder):
        def forward(self, x):
            raise RuntimeError()

    with pytest.raises(ConfigError, match=r"frames of v.mp4: RuntimeError: $"):
        CheckpointScorer(loaded(Silent()), "cpu").check(4, 5, "v.mp4")


def test_load_scorer_arguments():
    with pytest.raises(ConfigError, match="^give exactly one of `prototypes` and `ckpt`$"):
        load_scorer(None, None, "cpu")
    with pytest.raises(ConfigError, match="exactly one"):
        load_scorer("p.npz", "c.ckpt", "cpu")
    with pytest.raises(
        ConfigError,
        match="^`neutral` and `neutral_until_s` apply to `prototypes`; a checkpoint compares frames with the "
        "reference it was trained with$",
    ):
        load_scorer(None, "c.ckpt", "cpu", neutral="video")
    with pytest.raises(ConfigError, match="apply to `prototypes`"):
        load_scorer(None, "c.ckpt", "cpu", neutral_until_s=3.0)


class FakeReader:
    """What video_reference reads from an open video: a frame count and frames by index."""

    def __init__(self, frames, hint=None):
        self.frames, self.frame_count_hint, self.path = frames, hint, "v.mp4"
        self.num_frames = len(frames)
        self.asked = []

    def read_frames(self, idx):
        self.asked.append(list(idx))
        return self.frames[idx]


def test_session_reference_from_a_video_per_copy():
    frames = np.stack([np.full((4, 4), v, np.uint8) for v in (10, 200, 30, 40, 50)])
    s = CheckpointScorer(loaded(Recorder(), reference="median", reference_frames=3), "cpu")
    vr = FakeReader(frames)
    video = s.for_video(vr)
    assert video is not s and video.notes == [] and s._reference is None
    assert vr.asked == [[0, 2, 4]] and int(video._reference[0, 0, 0, 0]) == 30
    assert video._reference.shape == (1, 1, 4, 4) and video._reference.dtype == torch.uint8
    # the frame count given wins over the reader's
    vr = FakeReader(frames, hint=3)
    s.for_video(vr, 5)
    assert vr.asked == [[0, 2, 4]]
    s.for_video(vr)
    assert vr.asked[-1] == [0, 1, 2]
    # resized to the model's input first
    r = CheckpointScorer(loaded(Recorder(), reference="median", reference_frames=3, image_size=(2, 2)), "cpu")
    assert r.for_video(FakeReader(frames))._reference.shape == (1, 1, 2, 2)
    assert CheckpointScorer(loaded(Recorder()), "cpu").for_video(FakeReader(frames))._reference is None
    with pytest.raises(ConfigError, match="a 'trial' reference"):
        CheckpointScorer(loaded(Recorder(), reference="trial"), "cpu").for_video(FakeReader(frames))
    base = Scorer("p", ["a"], "prob", None, None, "cpu")
    assert base.for_video(FakeReader(frames), 5).notes == [] and not base.needs_reference


def test_load_real_checkpoints(tmp_path):
    from mouseemo.inference.trial_scorer import TrialScorer
    from mouseemo.testing import untrained_checkpoint

    ckpt = untrained_checkpoint(tmp_path / "cnn.ckpt", "cnn")
    s = load_scorer(None, ckpt, "cpu", margin=0.3)
    assert type(s) is CheckpointScorer and s.path == ckpt and s.margin == 0.3 and s.prefix == "prob"
    assert s.columns == [f"prob_{c}" for c in s.classes] and s.device == torch.device("cpu")
    assert CheckpointScorer.load(ckpt, "cpu").margin == 0.0
    trial = untrained_checkpoint(tmp_path / "trial.ckpt", "trial_cnn")
    t = load_scorer(None, trial, "cpu", margin=0.2)
    assert type(t) is TrialScorer and t.margin == 0.2 and t.path == trial


def test_load_prototypes_and_old_names(tmp_path):
    from mouseemo.inference import prototype_scorer, scorers
    from mouseemo.models.prototypes_io import Prototypes

    rng = np.random.default_rng(0)
    Prototypes(matrix=rng.random((2, 64)), names=["neutral", "fear"], hog={}, frame_size=(64, 128)).save(
        tmp_path / "p.npz"
    )
    s = load_scorer(tmp_path / "p.npz", None, "cpu", margin=0.25, neutral="own", neutral_until_s=4)
    assert type(s) is prototype_scorer.PrototypeScorer
    assert (s.margin, s.neutral_source, s.neutral_until_s, s.names) == (0.25, "own", 4.0, ["neutral", "fear"])
    d = load_scorer(tmp_path / "p.npz", None, "cpu")
    assert (d.margin, d.neutral_source, d.neutral_until_s) == (0.0, "prototypes", None)
    assert scorers.PrototypeScorer is prototype_scorer.PrototypeScorer
    assert scorers.NEUTRAL_SOURCES is prototype_scorer.NEUTRAL_SOURCES
    with pytest.raises(AttributeError, match="module 'mouseemo.inference.scorers' has no attribute 'Nope'"):
        _ = scorers.Nope


class Spy(Scorer):
    def begin_video(self, vr, num_frames=None, *, clock=None, events=None, trials=None):
        self.seen = (vr, num_frames, clock, events, trials)

    def begin_frames(self, frames, source="given frames"):
        self.seen = (frames.shape, source)


def test_for_video_and_for_frames_pass_everything_on():
    s = Spy("p", ["a"], "prob", None, None, "cpu")
    assert s.for_video("vr", 7, clock="c", events="e", trials="t").seen == ("vr", 7, "c", "e", "t")
    assert s.for_frames(np.zeros((4, 5), np.uint8), source="live").seen == ((1, 4, 5), "live")


def test_session_reference_from_frames_takes_only_reference_frames_of_them():
    """Nine frames, a reference of three: the median of the three spread evenly, not of all nine."""
    from mouseemo.data.video import reference_indices

    s = CheckpointScorer(loaded(Recorder(), reference="median", reference_frames=3, image_size=(2, 2)), "cpu")
    values = np.array([0, 10, 20, 30, 200, 40, 50, 60, 250], np.uint8)
    frames = np.broadcast_to(values[:, None, None], (9, 2, 2)).copy()
    picked = values[reference_indices(9, 3)]
    assert np.median(picked) != np.median(values)
    assert (s.for_frames(frames)._reference == int(np.median(picked))).all()


def test_confidence_is_float32_per_frame():
    s = CheckpointScorer(loaded(Recorder(k=3)), "cpu")
    c = s.confidence(torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.4, 0.1]], dtype=torch.float64))
    assert c.dtype == np.float32 and c.shape == (2,)
