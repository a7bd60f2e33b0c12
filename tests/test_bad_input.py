"""Bad input to training and evaluation: one clear error, never a silently wrong metric."""

import pytest

from mouseemo import tasks
from mouseemo.errors import ConfigError, DataError, user_error
from tests.helpers import write_dataset
from tests.test_configs import compose_cfg
from tests.test_train import small


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("ds"), num_mice=3, num_frames=80)


@pytest.fixture(scope="module")
def cnn_ckpt(dataset, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cnn")
    metrics = tasks.train(compose_cfg("train", small(dataset, tmp / "run", "trainer.max_epochs=1"), tmp))
    return metrics["best_ckpt"]


def _evaluate(dataset, tmp_path, ckpt, *extra):
    over = [o for o in small(dataset, tmp_path / "e", f"ckpt_path={ckpt}") if not o.startswith("model.net")]
    return tasks.evaluate(compose_cfg("evaluate", [*over, *extra], tmp_path))


def test_checkpoint_of_another_class_set(dataset, tmp_path, cnn_ckpt):
    with pytest.raises(ConfigError, match="was trained on classes"):
        _evaluate(
            dataset, tmp_path, cnn_ckpt, "model.net.widths=[8,16]",
            "data.classes=[neutral,pleasure,disgust,malaise,pain,passive_fear,fear]",
        )  # fmt: skip


@pytest.mark.parametrize(
    "model, match",
    [
        ("resnet18", "holds a SmallCNN network but the config builds resnet18"),
        ("temporal_cnn", "holds a SmallCNN network but the config builds TemporalConvNet"),
        ("hog_proto", "holds a ClassifierLitModule model but the config builds HogProtoLitModule"),
    ],
)
def test_checkpoint_of_another_model(dataset, tmp_path, cnn_ckpt, model, match):
    with pytest.raises(ConfigError, match=match):
        _evaluate(dataset, tmp_path, cnn_ckpt, f"model={model}")


def test_dataset_root_without_sessions(tmp_path):
    (tmp_path / "empty" / "m01").mkdir(parents=True)
    cfg = compose_cfg("train", small(tmp_path / "empty", tmp_path / "run"), tmp_path)
    with pytest.raises(Exception) as info:
        tasks.train(cfg)
    err = user_error(info.value)
    assert isinstance(err, DataError) and "no sessions under" in str(err)


def test_held_out_split_without_a_class_warns(tmp_path):
    from tests.helpers import write_session

    root = tmp_path / "ds"
    write_session(root, animal="m01", num_frames=160)
    write_session(root, animal="m02", seed=2, num_frames=160)
    write_session(root, animal="m03", seed=3, num_frames=60)  # neutral, pleasure, disgust only
    over = small(root, tmp_path / "run", "trainer.max_epochs=1", "data.split.test_animals=[m03]")
    with pytest.warns(UserWarning, match=r"test split has no frames of class\(es\) \['malaise', 'pain'"):
        metrics = tasks.train(compose_cfg("train", over, tmp_path))
    assert sum(map(sum, metrics["test/confusion_matrix"][3:])) == 0  # no test frame of those classes
