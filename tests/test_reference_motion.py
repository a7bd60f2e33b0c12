"""Session reference frames and motion channels: data, module, checkpoints and predict agree."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch

from mouseemo import tasks
from mouseemo.cli import main
from mouseemo.data.face_datamodule import FaceFramesDataModule
from mouseemo.data.video import FrameCache, VideoReader, reference_indices, session_reference, video_reference
from mouseemo.errors import ConfigError, DataError
from mouseemo.models.checkpoint import load_model
from mouseemo.models.classifier_module import ClassifierLitModule
from mouseemo.models.components.cnn import SmallCNN
from mouseemo.models.components.temporal import MotionStack
from mouseemo.utils.resolvers import input_channels
from tests.helpers import check_clip_input_errors, check_reported_scores, write_dataset, write_session
from tests.test_configs import compose_cfg


def _module(net, reference=None) -> ClassifierLitModule:
    return ClassifierLitModule(net, functools.partial(torch.optim.AdamW), reference=reference)


def _std(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean((-2, -1), keepdim=True)) / (x.std((-2, -1), keepdim=True) + 1e-5)


# -- the reference frame ---------------------------------------------------------------------------
def test_session_reference_is_the_usual_face():
    rng = np.random.default_rng(0)
    usual = rng.integers(0, 256, (12, 16), dtype=np.uint8)
    frames = np.repeat(usual[None], 100, axis=0)
    frames[10:40] = 255 - usual  # a 30% expression bout does not move the median
    ref = session_reference(frames, max_frames=50)
    assert ref.dtype == np.uint8 and ref.shape == usual.shape
    np.testing.assert_array_equal(ref, usual)
    np.testing.assert_array_equal(reference_indices(100, 5), [0, 25, 50, 74, 99])
    np.testing.assert_array_equal(reference_indices(3, 300), [0, 1, 2])
    with pytest.raises(DataError, match=r"\(T, H, W\)"):
        session_reference(np.zeros((0, 4, 4), np.uint8))
    with pytest.raises(DataError, match=r"\(T, H, W\)"):
        session_reference(np.zeros((4, 4), np.uint8))


def test_video_reference_matches_the_training_cache(tmp_path):
    session = write_session(tmp_path, num_frames=90, size=(48, 64), seed=3)
    video = session / "face.mp4"
    crop, size = (2, 1, 60, 44), (24, 32)
    cache = FrameCache.build(video, tmp_path / "c.npy", crop=crop, size=size)
    expected = session_reference(np.asarray(cache.frames), 40)
    with VideoReader(video, crop=crop) as vr:
        every = vr.read()
        picked = vr.read_frames([50, 3, 3, 10_000, 89])  # sorted, unique; past the end dropped
        np.testing.assert_array_equal(picked, every[[3, 50, 89]])
        with pytest.raises(ConfigError, match=">= 0"):
            vr.read_frames([-1])
        got = video_reference(vr, size, 40)
        assert next(vr.iter_chunks(8))[0] == 0  # the reader's own position is untouched
    np.testing.assert_array_equal(got, expected)


def test_datamodule_gives_each_session_its_reference(tmp_path):
    ds = write_dataset(tmp_path / "ds", num_mice=3, num_frames=60)
    common = dict(root=str(ds), image_size=(24, 32), split={"test_animals": 1, "val_animals": 1})
    dm = FaceFramesDataModule(**common, reference="median", reference_frames=25, clip_length=3)
    dm.prepare_data()
    dm.setup()
    for stage in ("train", "val", "test"):
        item = dm.datasets[stage][5]
        sf = next(s for s in dm.sessions if s.session.animal == item["animal"])
        assert item["reference"].shape == (1, 24, 32) and item["reference"].dtype == torch.uint8
        expected = session_reference(np.load(sf.cache_path), 25)
        np.testing.assert_array_equal(item["reference"][0].numpy(), expected)
        assert item["frames"].shape == (3, 1, 24, 32)
    batch = next(iter(dm.train_dataloader()))
    assert batch["reference"].shape == (len(batch["label"]), 1, 24, 32)
    plain = FaceFramesDataModule(**common)
    plain.setup()
    assert "reference" not in plain.datasets["train"][0]
    with pytest.raises(ConfigError, match="reference must be one of median"):
        FaceFramesDataModule(**common, reference="mean")
    with pytest.raises(ConfigError, match="reference_frames"):
        FaceFramesDataModule(**common, reference="median", reference_frames=0)


# -- the module's channels -------------------------------------------------------------------------
def test_reference_channels_are_frame_and_change_from_reference():
    module = _module(SmallCNN(in_channels=2, widths=(8, 16)), reference="median").eval()
    img = torch.randint(0, 256, (4, 1, 24, 32), dtype=torch.uint8)
    ref = torch.randint(0, 256, (4, 1, 24, 32), dtype=torch.uint8)
    out = module.on_after_batch_transfer({"image": img.clone(), "reference": ref.clone()}, 0)["image"]
    f, r = _std(img.float() / 255), _std(ref.float() / 255)
    assert out.shape == (4, 2, 24, 32)
    torch.testing.assert_close(out[:, :1], f)
    torch.testing.assert_close(out[:, 1:], f - r)
    assert module(out).shape == (4, 7)
    with pytest.raises(ConfigError, match="session reference"):
        module.on_after_batch_transfer({"image": img.clone()}, 0)
    with pytest.raises(ValueError, match="does not match"):
        module.on_after_batch_transfer({"image": img.clone(), "reference": ref[:, :, :10]}, 0)
    # without a reference the input is the standardised frame, as before
    plain = _module(SmallCNN(widths=(8, 16))).eval()
    out = plain.on_after_batch_transfer({"image": img.clone()}, 0)["image"]
    torch.testing.assert_close(out, _std(img.float() / 255))


def test_training_augmentation_moves_frames_and_reference_alike():
    from mouseemo.models.components.augment import FaceAugment

    torch.manual_seed(0)
    module = _module(SmallCNN(in_channels=2, widths=(8, 16)), reference="median")
    module.augment = FaceAugment(strength=1.0, noise_std=0.0, blur_p=0.0, erase_p=0.0)

    class _Trainer:
        training = True

    module._trainer = _Trainer()
    img = torch.randint(0, 256, (16, 1, 24, 32), dtype=torch.uint8)
    out = module.on_after_batch_transfer({"image": img.clone(), "reference": img.clone()}, 0)["image"]
    # the reference is the frame itself here: any independent draw would leave a difference
    assert out[:, 1].abs().max() < 1e-4
    assert not torch.allclose(out[:, 0], _std(img.float() / 255)[:, 0])  # it was augmented


def test_motion_stack_channels_and_errors():
    net = MotionStack(SmallCNN(in_channels=4, widths=(8, 16)), clip_length=3)
    x = torch.randn(2, 3, 2, 24, 32)
    s = net.stack(x)
    assert s.shape == (2, 4, 24, 32)
    torch.testing.assert_close(s[:, :2], x[:, -1])
    torch.testing.assert_close(s[:, 2], x[:, 2, 0] - x[:, 1, 0])  # lag 1
    torch.testing.assert_close(s[:, 3], x[:, 2, 0] - x[:, 0, 0])  # lag 2
    assert net(x).shape == (2, 7) and net.embed(x).shape == (2, 16)
    check_clip_input_errors(MotionStack, net, clip_length=3, channels=2)
    assert input_channels(None) == 1 and input_channels("median") == 2
    assert input_channels("median", 3) == 4 and input_channels("none", 3) == 3


def test_mismatched_reference_between_model_and_data(tmp_path):
    ds = write_dataset(tmp_path / "ds", num_mice=3, num_frames=40)
    over = [
        f"data.root={ds}", "data.synthesize=null", "data.image_size=[24,32]", "model.net.widths=[8,16]",
        "model.reference=median", "model.net.in_channels=2", "data.reference=null", "trainer.max_epochs=1",
        "++baseline=null", f"paths.output_dir={tmp_path}/run",
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="data gives none"):
        tasks.train(compose_cfg("train", over, tmp_path))


# -- train -> checkpoint -> predict ---------------------------------------------------------------
def test_reference_motion_model_trains_and_predicts_as_trained(tmp_path):
    ds = write_dataset(tmp_path / "ds", num_mice=3, num_frames=60)
    run = tmp_path / "run"
    over = [
        f"data.root={ds}", "data.synthesize=null", "data.image_size=[24,32]", "data.reference_frames=30",
        "data.batch_size=32", "model=motion_cnn", "model.reference=median", "model.net.frame_net.widths=[8,16]",
        "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "++baseline=null",
        f"paths.output_dir={run}",
    ]  # fmt: skip
    cfg = compose_cfg("train", over, tmp_path)
    assert cfg.data.reference == "median" and cfg.data.clip_length == 3
    assert cfg.model.net.frame_net.in_channels == 4  # frame, frame - reference, 2 motion channels
    metrics = tasks.train(cfg)
    check_reported_scores(metrics, run)
    ckpt = metrics["best_ckpt"] or str(run / "checkpoints" / "last.ckpt")
    loaded = load_model(ckpt)
    assert loaded.reference == "median" and loaded.reference_frames == 30 and loaded.clip_length == 3

    session = ds / "m02" / "s01"
    out = tmp_path / "pred"
    assert main(["predict", str(session), "--ckpt", ckpt, "--out", str(out), "--batch-size", "16"]) == 0
    import csv

    with open(out / "m02_s01.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    cols = [j for j, h in enumerate(rows[0]) if h.startswith("prob_")]
    prob = np.array([[float(r[j]) for j in cols] for r in rows[1:]])
    assert prob.shape == (60, 7)
    # the module on the training pipeline's frames: cache, session reference, clips ending at each frame
    frames = np.asarray(FrameCache.build(session / "face.mp4", tmp_path / "c.npy", size=(24, 32)).frames)
    # the reference by its definition, not by session_reference (which predict uses): the pixel-wise
    # median of 30 frames spread evenly over the 60, rounded to uint8
    spread = np.round(np.arange(30) * 59 / 29).astype(int)
    hand = np.median(frames[spread].astype(np.float64), axis=0).round().astype(np.uint8)
    ref = torch.from_numpy(hand)[None, None].expand(60, -1, -1, -1)
    idx = np.maximum(np.arange(60)[:, None] - np.array([2, 1, 0]), 0)
    clips = torch.from_numpy(frames[idx])[:, :, None]
    batch = loaded.module.on_after_batch_transfer({"frames": clips, "reference": ref.clone()}, 0)
    with torch.no_grad():
        expected = loaded.module(batch["frames"]).softmax(1).numpy()
    np.testing.assert_allclose(prob, expected, atol=1e-5)
    # correlates scores a checkpoint exactly as predict does (reference, clips and all)
    from mouseemo.data.session import Session
    from mouseemo.inference.traces import traces_from_checkpoint

    traces = traces_from_checkpoint(Session.open(session), ckpt, batch_size=16)
    np.testing.assert_allclose(traces.scores, prob, atol=1e-5)
    summary = json.loads((out / "m02_s01.json").read_text())
    assert summary["model"]["reference"] == {"kind": "median", "frames": 30}
    assert summary["model"]["clip_length"] == 3
    # the model really uses the reference: another session's reference changes the scores
    other = np.asarray(
        FrameCache.build(ds / "m01" / "s01" / "face.mp4", tmp_path / "o.npy", size=(24, 32)).frames
    )
    ref2 = torch.from_numpy(session_reference(255 - other, 30))[None, None].expand(60, -1, -1, -1)
    batch = loaded.module.on_after_batch_transfer({"frames": clips, "reference": ref2.clone()}, 0)
    with torch.no_grad():
        changed = loaded.module(batch["frames"]).softmax(1).numpy()
    assert np.abs(changed - expected).max() > 1e-3
