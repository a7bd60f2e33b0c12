"""Augmentation (kornia, training only), clips for temporal models, balanced sampling."""

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate

from mouseemo import tasks
from mouseemo.data.face_datamodule import segment_starts
from mouseemo.errors import ConfigError
from mouseemo.models.checkpoint import load_model
from mouseemo.models.components.augment import FaceAugment
from tests.helpers import check_reported_scores, write_dataset
from tests.test_configs import compose_cfg
from tests.test_train import small


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("ds"), num_mice=3, num_frames=160)


# -- augmentation ---------------------------------------------------------------------------------
def test_augment_frames_and_clips():
    torch.manual_seed(0)
    x = torch.rand(6, 1, 24, 32)
    aug = FaceAugment(strength=1.5)
    y = aug(x)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert not torch.allclose(x, y)
    assert FaceAugment(strength=0)(x) is x
    # a clip of one repeated frame stays one repeated frame: the same draw for every frame
    clip = torch.rand(4, 1, 1, 24, 32).repeat(1, 5, 1, 1, 1)
    out = FaceAugment(strength=2.0, noise_std=0.0)(clip)
    assert out.shape == clip.shape
    torch.testing.assert_close(out, out[:, :1].expand_as(out))
    assert not torch.allclose(out, clip)
    with pytest.raises(ConfigError, match="strength"):
        FaceAugment(strength=-1)


class _Frames(pl.Callback):
    """Keeps the images each stage's batches carry after the device transfer."""

    def __init__(self):
        self.seen = {"train": [], "val": []}

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.seen["train"].append(batch["image"].detach().clone())

    def on_validation_batch_start(self, trainer, module, batch, batch_idx, dataloader_idx=0):
        if not trainer.sanity_checking:
            self.seen["val"].append(batch["image"].detach().clone())


def test_augmentation_runs_on_training_batches_only(dataset, tmp_path):
    over = small(dataset, tmp_path / "r", "model.standardize=false", "model.augment.strength=1.0")
    cfg = compose_cfg("train", over, tmp_path)
    dm, model, _ = tasks._build(cfg)
    spy = _Frames()
    trainer = pl.Trainer(
        max_epochs=1, limit_train_batches=2, limit_val_batches=2, callbacks=[spy], logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(model, datamodule=dm)

    def on_uint8_grid(x):  # unaugmented frames are exactly k / 255
        return torch.allclose(x * 255, (x * 255).round(), atol=1e-4)

    assert spy.seen["val"] and all(on_uint8_grid(x) for x in spy.seen["val"])
    assert spy.seen["train"] and not any(on_uint8_grid(x) for x in spy.seen["train"])


# -- clips ----------------------------------------------------------------------------------------
def test_segment_starts():
    mask = np.array([0, 1, 1, 0, 1, 1, 1, 0], dtype=bool)
    np.testing.assert_array_equal(segment_starts(mask), [-1, 1, 1, -1, 4, 4, 4, -1])


def test_clips_end_at_the_labelled_frame_and_stay_in_their_segment(dataset, tmp_path):
    over = small(dataset, tmp_path / "r", "model=temporal_cnn", "model.net.clip_length=4", "data.clip_step=2")
    over += ["experiment=time_split", "data.split.gap_s=0.5", "data.split.num_blocks=4"]
    cfg = compose_cfg("train", [o for o in over if not o.startswith("model.net.widths")], tmp_path)
    assert cfg.data.clip_length == 4
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    frames_of = {s.name: np.load(s.cache_path) for s in dm.sessions}
    for stage in ("train", "test"):
        ds = dm.datasets[stage]
        clamped = 0
        for i in range(0, len(ds), 3):
            item = ds[i]
            s, f = ds.index[i]
            name = "/".join(ds.names[s])
            start = segment_starts(dm.masks[dm.sessions[s].name][stage])[f]
            assert item["frames"].shape == (4, 1, 24, 32)
            want = np.maximum(f - 2 * np.arange(3, -1, -1), start)  # never before the segment starts
            clamped += int((f - 6) < start)
            np.testing.assert_array_equal(item["frames"][:, 0].numpy(), frames_of[name][want])
            assert int(item["frame"]) == f and int(item["label"]) == ds.labels[i]
        assert clamped > 0  # segment starts were met
    batch = next(iter(dm.train_dataloader()))
    assert batch["frames"].shape[1:] == (4, 1, 24, 32) and "image" not in batch


def test_temporal_model_round_trip(dataset, tmp_path):
    run = tmp_path / "run"
    over = [o for o in small(dataset, run, "model=temporal_cnn") if not o.startswith("model.net.widths")]
    over += ["model.net.clip_length=3", "model.net.frame_net.widths=[8,16]", "model.net.hidden=16"]
    metrics = tasks.train(compose_cfg("train", [*over, "trainer.max_epochs=1"], tmp_path))
    check_reported_scores(metrics, run)
    rows = (run / "test_predictions.csv").read_text().splitlines()
    assert len(rows) - 1 == 160  # every frame of the held-out animal, as for frame models
    loaded = load_model(metrics["best_ckpt"])
    assert loaded.clip_length == 3 and loaded.module.clip_length == 3
    clips = torch.randint(0, 256, (2, 3, 1, 24, 32), dtype=torch.uint8)
    batch = loaded.module.on_after_batch_transfer({"frames": clips}, 0)
    with torch.no_grad():
        assert loaded.module(batch["frames"]).shape == (2, 7)
    # data and model disagree on the clip length: refused
    bad = compose_cfg("train", [*over, "data.clip_length=1", "trainer.max_epochs=1"], tmp_path)
    with pytest.raises(ConfigError, match="clips of 3 frame"):
        tasks.train(bad)


def test_frame_model_checkpoint_says_single_frames(dataset, tmp_path):
    metrics = tasks.train(
        compose_cfg("train", small(dataset, tmp_path / "r", "trainer.max_epochs=1"), tmp_path)
    )
    assert load_model(metrics["best_ckpt"]).clip_length == 1


# -- class imbalance ------------------------------------------------------------------------------
@pytest.mark.parametrize("sampler", ["shuffle", "balanced"])
def test_balanced_sampler(dataset, tmp_path, sampler):
    # the fixture's labels cycle through the 7 classes in 8 blocks: neutral has twice the frames
    cfg = compose_cfg("train", small(dataset, tmp_path / "r", f"data.sampler={sampler}"), tmp_path)
    dm, model, _ = tasks._build(cfg)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.class_counts[0] == 2 * dm.class_counts[1]
    drawn = np.concatenate([b["label"].numpy() for _ in range(10) for b in dm.train_dataloader()])
    assert len(drawn) == 10 * len(dm.datasets["train"])
    neutral = np.mean(drawn == 0)
    if sampler == "balanced":
        assert abs(neutral - 1 / 7) < 0.03
    else:
        assert neutral == pytest.approx(2 / 8)
    trainer = pl.Trainer(
        fast_dev_run=True, logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.fit(model, datamodule=dm)
    weights = model.class_weights.numpy()
    if sampler == "balanced":  # the sampler evens the classes out: no second correction in the loss
        np.testing.assert_array_equal(weights, np.ones(7))
    else:
        assert weights[0] == pytest.approx(weights[1] / 2)


def test_bad_data_options(dataset, tmp_path):
    for bad, match in (("data.sampler=uniform", "data.sampler"), ("data.clip_step=0", "clip_step")):
        cfg = compose_cfg("train", small(dataset, tmp_path / "r", bad), tmp_path)
        with pytest.raises(Exception) as info:
            instantiate(cfg.data)
        from mouseemo.errors import user_error

        assert match in str(user_error(info.value))


def test_split_seed_fixes_the_held_out_animals_while_the_run_seed_varies(tmp_path):
    ds = write_dataset(tmp_path / "ds", num_mice=6, num_frames=40)

    def test_animals(*extra):
        cfg = compose_cfg("train", small(ds, tmp_path / "r", *extra), tmp_path)
        dm = instantiate(cfg.data)
        dm.prepare_data()
        dm.setup("fit")
        return tuple(dm.animal_groups["test"]), tuple(dm.animal_groups["val"])

    followed = {test_animals(f"seed={s}") for s in range(6)}
    assert len(followed) > 1  # null: the held-out animals follow the run's seed
    fixed = {test_animals(f"seed={s}", "data.split.seed=7") for s in range(6)}
    assert len(fixed) == 1
    assert fixed == {test_animals("seed=7")}
