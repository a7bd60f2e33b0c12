"""model.init_from: start a classifier from a trained network of the same kind (fine-tuning)."""

import pytest
import torch
from hydra.utils import instantiate

from mouseemo import tasks
from mouseemo.errors import ConfigError, DataError
from mouseemo.models.checkpoint import init_weights_from, read_checkpoint
from tests.helpers import write_dataset
from tests.test_configs import compose_cfg
from tests.test_train import REPO, _cli, small


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small cnn trained for one epoch, and its dataset."""
    tmp = tmp_path_factory.mktemp("init")
    ds = write_dataset(tmp / "ds", num_mice=3, num_frames=80)
    metrics = tasks.train(compose_cfg("train", small(ds, tmp / "run", "trainer.max_epochs=1"), tmp))
    return ds, metrics["best_ckpt"]


def _net_state(path):
    return {k[4:]: v for k, v in read_checkpoint(path)["state_dict"].items() if k.startswith("net.")}


def _model(ds, tmp_path, *extra):
    return instantiate(compose_cfg("train", small(ds, tmp_path / "r", *extra), tmp_path).model)


def test_the_network_starts_from_the_checkpoint(trained, tmp_path):
    ds, ckpt = trained
    saved = _net_state(ckpt)
    model = _model(ds, tmp_path, f"model.init_from={ckpt}")
    assert not all(torch.equal(v, saved[k]) for k, v in model.net.state_dict().items())
    done = init_weights_from(model, ckpt)
    assert done == {"loaded": len(saved), "fresh": []}
    for k, v in model.net.state_dict().items():
        assert torch.equal(v, saved[k]), k


def test_another_class_list_starts_the_class_layer_fresh(trained, tmp_path):
    ds, ckpt = trained
    saved = _net_state(ckpt)
    model = _model(ds, tmp_path, "data.classes=[neutral,pain]")
    done = init_weights_from(model, ckpt)
    assert len(done["fresh"]) == 2  # the class layer's weight and bias
    for k, v in model.net.state_dict().items():
        if k in done["fresh"]:
            assert v.shape[0] == 2 and saved[k].shape[0] == 7
        else:
            assert torch.equal(v, saved[k]), k


def test_checkpoints_of_another_network_are_refused(trained, tmp_path):
    ds, ckpt = trained
    with pytest.raises(ConfigError, match="holds a SmallCNN network but this model builds MotionStack"):
        over = [
            "model=motion_cnn",
            f"data.root={ds}",
            "data.synthesize=null",
            "model.net.frame_net.widths=[8,16]",
        ]
        init_weights_from(instantiate(compose_cfg("train", over, tmp_path).model), ckpt)
    with pytest.raises(ConfigError, match="another network configuration .*other shapes"):
        init_weights_from(_model(ds, tmp_path, "model.net.widths=[8,32]"), ckpt)
    with pytest.raises(ConfigError, match="another network configuration"):
        init_weights_from(_model(ds, tmp_path, "model.reference=median"), ckpt)  # 2 input channels
    alien = tmp_path / "alien.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(3)}}, alien)
    with pytest.raises(ConfigError, match="not a checkpoint of a learned classifier"):
        init_weights_from(_model(ds, tmp_path), alien)
    with pytest.raises(DataError, match="checkpoint not found"):
        init_weights_from(_model(ds, tmp_path), tmp_path / "missing.ckpt")


def test_training_from_a_checkpoint_and_the_cli_error(trained, tmp_path):
    ds, ckpt = trained
    metrics = tasks.train(
        compose_cfg(
            "train", small(ds, tmp_path / "ft", "trainer.max_epochs=1", f"model.init_from={ckpt}"), tmp_path
        )
    )
    assert metrics["best_ckpt"]
    record = read_checkpoint(metrics["best_ckpt"])["mouseemo"]["model"]
    assert record["init_from"] == str(ckpt)
    # a trained checkpoint loads for inference even when the file it started from is gone
    from mouseemo.models.checkpoint import load_model

    moved = tmp_path / "moved.ckpt"
    moved.write_bytes(open(metrics["best_ckpt"], "rb").read())
    assert load_model(moved).module.init_from == str(ckpt)
    proc = _cli(
        [str(REPO / "train.py"), f"data.root={ds}", "data.synthesize=null", "data.image_size=[24,32]",
         "model.net.frame_net.widths=[8,16]", f"model.init_from={ckpt}", f"hydra.run.dir={tmp_path / 'cli'}"],
        tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("mouseemo: error: model.init_from=") and "MotionStack" in last
    assert "Traceback" not in proc.stderr
