"""Self-describing checkpoints: a trained model rebuilds from its checkpoint alone."""

import pytest
import torch

from mouseemo import tasks
from mouseemo.errors import DataError
from mouseemo.models.checkpoint import RECORD_KEY, load_model
from tests.helpers import check_missing_and_garbage, write_dataset
from tests.test_configs import compose_cfg
from tests.test_train import small


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("ds"), num_mice=3, num_frames=80)


@pytest.mark.parametrize("model", ["cnn", "hog_proto"])
def test_checkpoint_rebuilds_the_model(dataset, tmp_path, model):
    run = tmp_path / "run"
    overrides = small(dataset, run, f"model={model}", "trainer.max_epochs=1", "data.crop=[2,1,60,44]")
    if model != "cnn":  # no network to shrink
        overrides = [o for o in overrides if not o.startswith("model.net")]
    metrics = tasks.train(compose_cfg("train", overrides, tmp_path))
    ckpt_path = metrics["best_ckpt"] or str(run / "checkpoints" / "last.ckpt")
    ckpt = torch.load(ckpt_path, weights_only=False)
    assert ckpt[RECORD_KEY]["data"]["image_size"] == [24, 32]
    loaded = load_model(ckpt_path)
    assert loaded.crop == (2, 1, 60, 44)
    assert loaded.image_size == (24, 32)
    assert loaded.classes[0] == "neutral" and len(loaded.score_names) >= 2
    assert not loaded.module.training
    frames = torch.randint(0, 256, (5, 1, 24, 32), dtype=torch.uint8)
    batch = loaded.module.on_after_batch_transfer({"image": frames.clone()}, 0)
    with torch.no_grad():
        scores = loaded.module(batch["image"])
    assert scores.shape == (5, len(loaded.score_names))
    assert torch.isfinite(scores).all()


def test_bad_checkpoints(tmp_path):
    check_missing_and_garbage(load_model, tmp_path, ".ckpt", missing="not found", garbage="cannot read")
    plain = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {}}, plain)
    with pytest.raises(DataError, match="no mouseemo model record"):
        load_model(plain)
