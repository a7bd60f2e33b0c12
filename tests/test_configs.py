"""Every option of every config group composes, and what can be built on a CPU instantiates."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate

from mouseemo.hydra_entry import config_dir
from mouseemo.utils.resolvers import register_resolvers

CONF = config_dir()


def options(group: str) -> list[str]:
    return sorted(
        p.stem
        for p in (CONF / group).glob("*.yaml")
        if p.stem != "default" or group in ("callbacks", "paths", "hydra")
    )


def compose_cfg(task: str, overrides: list[str], tmp_path: Path):
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            config_name=task,
            overrides=[f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path}/run", *overrides],
            return_hydra_config=True,
        )
    HydraConfig().set_config(cfg)
    return cfg


@pytest.mark.parametrize("task", ["train", "evaluate"])
@pytest.mark.parametrize(
    "group, option",
    [
        (g, o)
        for g in ("data", "model", "trainer", "logger", "callbacks", "experiment", "debug")
        for o in options(g)
    ],
)
def test_option_composes(task, group, option, tmp_path):
    extra = [f"data.root={tmp_path}/ds"] if option == "sessions" else []
    cfg = compose_cfg(task, [f"{group}={option}", *extra], tmp_path)
    assert cfg.data._target_.rsplit(".", 1)[-1] in ("FaceFramesDataModule", "FaceNeuralDataModule")
    assert cfg.model.classes == cfg.data.classes
    assert str(cfg.paths.output_dir) == f"{tmp_path}/run"
    if group == "trainer":
        assert cfg.trainer._target_ == "pytorch_lightning.Trainer"
        if option in ("cpu", "ddp_cpu"):
            trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
            assert trainer.max_epochs == cfg.trainer.max_epochs
    if group == "model":
        model = instantiate(cfg.model)
        assert list(model.classes) == list(cfg.data.classes)
        if hasattr(model, "net"):
            assert model.net.num_classes == len(cfg.data.classes)
        elif getattr(model, "is_joint_encoder", False):  # session layers come from the data in setup
            assert model.sessions == {} and model.configure_optimizers()["optimizer"] is not None
        else:  # HOG models: no network, no optimizer; one pass over the training frames is the fit
            assert model.automatic_optimization is False
            assert model.configure_optimizers() is None
    if group == "logger":
        loggers = [instantiate(c) for c in cfg.logger.values()] if cfg.logger else []
        assert all(lg.save_dir.startswith(str(tmp_path)) for lg in loggers)
    if group == "callbacks":
        cbs = [instantiate(c) for c in cfg.callbacks.values()] if cfg.callbacks else []
        assert len(cbs) == len(cfg.callbacks or {})
    if group == "data":
        dm = instantiate(cfg.data)
        assert dm.image_size == tuple(cfg.data.image_size)


def test_experiment_overrides_apply(tmp_path):
    cfg = compose_cfg("train", ["experiment=time_split"], tmp_path)
    assert cfg.data.split.kind == "time"
    cfg = compose_cfg("train", ["experiment=shuffle_control"], tmp_path)
    assert cfg.data.shuffle_train_labels is True


def test_sessions_requires_root(tmp_path):
    from mouseemo.cli import user_error

    cfg = compose_cfg("train", ["data=sessions"], tmp_path)
    with pytest.raises(Exception) as info:
        instantiate(cfg.data)
    assert "data.root is not set" in str(user_error(info.value))
