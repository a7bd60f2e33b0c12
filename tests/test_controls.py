"""Controls that can fail: a learned model trained on real labels beats the same model trained on
circularly shifted labels, on an animal neither saw."""

import pytest

from mouseemo import tasks
from tests.helpers import check_reported_scores, write_dataset
from tests.test_configs import compose_cfg


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("ds"), num_mice=3, num_frames=160)


def _cnn(dataset, run, *extra):
    return [
        f"data.root={dataset}", "data.synthesize=null", "data.image_size=[48,64]", "data.batch_size=32",
        "data.train_stride=1", "data.eval_stride=1", "data.split.test_animals=[m03]",
        "data.split.val_animals=[m02]", "model.net.widths=[8,16]", "trainer.max_epochs=4",
        "trainer.enable_progress_bar=false", "callbacks.early_stopping=null", "++baseline=null",
        f"paths.output_dir={run}", *extra,
    ]  # fmt: skip


def test_learned_model_beats_its_training_time_shuffle_control(dataset, tmp_path):
    real = tasks.train(compose_cfg("train", _cnn(dataset, tmp_path / "real"), tmp_path))
    shuffled = tasks.train(
        compose_cfg("train", _cnn(dataset, tmp_path / "shuffled", "data.shuffle_train_labels=true"), tmp_path)
    )
    check_reported_scores(real, tmp_path / "real")
    check_reported_scores(shuffled, tmp_path / "shuffled")
    # same held-out frames for both
    assert sum(map(sum, real["test/confusion_matrix"])) == sum(map(sum, shuffled["test/confusion_matrix"]))
    assert real["test/macro_f1"] >= 0.7
    assert real["test/macro_f1"] - shuffled["test/macro_f1"] >= 0.4
