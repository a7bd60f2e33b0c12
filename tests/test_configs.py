"""Every option of every config group composes, and what can be built on a CPU instantiates."""

import copy
import json
from pathlib import Path

import pytest
from hydra.utils import instantiate

from mouseemo.utils.configs import compose, config_dir

CONF = config_dir()
FACE_FREE = ("timing", "timing_phase", "pixel_change_trial", "pixel_change_session")


def options(group: str) -> list[str]:
    return sorted(
        p.stem
        for p in (CONF / group).glob("*.yaml")
        if p.stem != "default" or group in ("callbacks", "paths", "hydra")
    )


def compose_cfg(task: str, overrides: list[str], tmp_path: Path):
    """The task's config as Hydra composes it. Tests run the small ``cnn`` unless they name a model
    or an experiment (the default ``motion_cnn`` has its own tests)."""
    if not any(o.startswith(("model=", "experiment=", "~model")) for o in overrides):
        overrides = ["model=cnn", *overrides]
    paths = [f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path}/run"]
    return compose(task, [*paths, *overrides], hydra_config=True)


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
    if (group, option) == ("experiment", "optuna_search"):
        pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="needs the [cluster] extra")
    if (group, option) == ("logger", "tensorboard"):
        pytest.importorskip("tensorboard", reason="needs the [tensorboard] extra")
    extra = [f"data.root={tmp_path}/ds"] if option == "sessions" else []
    if group == "model" and option in FACE_FREE:  # two-class rules (neutral vs one stimulus class)
        extra.append("data.classes=[neutral,pain]")
    cfg = compose_cfg(task, [f"{group}={option}", *extra], tmp_path)
    assert cfg.data._target_.rsplit(".", 1)[-1] in ("FaceFramesDataModule", "FaceNeuralDataModule")
    assert cfg.model.classes == cfg.data.classes
    assert str(cfg.paths.output_dir) == f"{tmp_path}/run"
    if group == "trainer":
        assert cfg.trainer._target_ == "pytorch_lightning.Trainer"
        if option in ("cpu", "ddp_cpu"):
            trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
            assert trainer.max_epochs == cfg.trainer.max_epochs
        if option in ("gpu", "ddp"):  # no CUDA here: check what can be built without it
            assert cfg.trainer.accelerator == "gpu" and cfg.trainer.precision == "bf16-mixed"
        if option in ("ddp", "ddp_cpu"):
            strategy = instantiate(cfg.trainer.strategy)
            assert type(strategy).__name__ == "MouseemoDDPStrategy"
            assert cfg.trainer.devices >= 2
            assert option == "ddp_cpu" or cfg.trainer.num_nodes == 1  # trainer.num_nodes=N: multi-node
    if group == "model":
        model = instantiate(cfg.model)
        assert list(model.classes) == list(cfg.data.classes)
        if hasattr(model, "net"):
            assert model.net.num_classes == len(cfg.data.classes)
            # the data follows the model: clips for temporal models, single frames otherwise
            assert cfg.data.clip_length == model.clip_length == getattr(model.net, "clip_length", 1)
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
    if group == "experiment" and option.startswith("benchmark"):
        assert list(cfg.benchmark.models) == ["hog_proto", "hog_proto_paper", "hog_rf", "cnn", "motion_cnn"]
        assert list(cfg.benchmark.label_sources) == ["truth", "events"]
        if option in ("benchmark_dev", "benchmark_report"):  # tuning and reporting on other animals
            other = compose_cfg(
                task,
                [f"experiment={'benchmark_report' if option == 'benchmark_dev' else 'benchmark_dev'}"],
                tmp_path,
            )
            assert cfg.data.synthesize.seed != other.data.synthesize.seed
            assert cfg.data.root != other.data.root and cfg.benchmark.folds == "all"
        assert cfg.callbacks.model_checkpoint.monitor == "val/macro_f1"  # best + last for every job
    if group == "experiment" and option == "optuna_search":
        sweeper = cfg.hydra.sweeper
        assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "maximize"
        assert set(sweeper.params) == {"model", "model.optimizer.lr", "model.augment.strength"}
        assert cfg.optimized_metric == "val/macro_f1"


@pytest.mark.parametrize("task", ["train", "evaluate"])
def test_slurm_launcher_composes(task, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="needs the [cluster] extra")
    cfg = compose_cfg(task, ["hydra/launcher=slurm", "trainer=ddp", "trainer.num_nodes=2"], tmp_path)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 4, 4)
    assert instantiate(launcher).params["timeout_min"] == launcher.timeout_min


@pytest.mark.parametrize("model", ["cnn", "resnet18", "temporal_cnn"])
def test_optuna_search_space_applies(model, tmp_path):
    """Each point of the search space is a valid set of overrides for every searched backbone."""
    cfg = compose_cfg(
        "train", [f"model={model}", "model.optimizer.lr=0.0005", "model.augment.strength=1.7"], tmp_path
    )
    module = instantiate(cfg.model)
    assert module.augment.strength == pytest.approx(1.7)
    assert cfg.model.optimizer.lr == 0.0005


def test_experiment_overrides_apply(tmp_path):
    cfg = compose_cfg("train", ["experiment=time_split"], tmp_path)
    assert cfg.data.split.kind == "time"
    cfg = compose_cfg("train", ["experiment=shuffle_control"], tmp_path)
    assert cfg.data.shuffle_train_labels is True


def test_sessions_requires_root(tmp_path):
    from mouseemo.errors import user_error

    cfg = compose_cfg("train", ["data=sessions"], tmp_path)
    with pytest.raises(Exception) as info:
        instantiate(cfg.data)
    assert "data.root is not set" in str(user_error(info.value))


@pytest.mark.parametrize("experiment", ["time_split", "shuffle_control"])
def test_experiment_runs_one_step(experiment, tmp_path):
    from mouseemo import tasks
    from tests.helpers import check_reported_scores, write_dataset

    ds = write_dataset(tmp_path / "ds", num_mice=3, num_frames=80)
    over = [
        f"experiment={experiment}", f"data.root={ds}", "data.synthesize=null", "data.image_size=[24,32]",
        "model.net.frame_net.widths=[8,16]", "debug=fast", "baseline=null", f"paths.output_dir={tmp_path}/run",
    ]  # fmt: skip
    if experiment == "time_split":
        over.append("data.split.gap_s=0.2")
    metrics = tasks.train(compose_cfg("train", over, tmp_path))
    check_reported_scores(metrics, tmp_path / "run")
    assert (tmp_path / "run" / "splits.json").is_file()


#: The torchvision model configs as each one spelled them out in full before they shared
#: ``conf/model/backbone/torchvision.yaml``: the base, and what differs per model.
TORCHVISION_MODEL = {
    "_target_": "mouseemo.models.classifier_module.ClassifierLitModule",
    "net": {
        "_target_": "mouseemo.models.components.backbones.TorchvisionBackbone",
        "arch": None,
        "in_channels": "${input_channels:${model.reference}}",
        "num_classes": "${len:${data.classes}}",
        "weights_path": None,
        "dropout": 0.2,
    },
    "optimizer": {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 0.001, "weight_decay": 0.0001},
    "scheduler": {
        "_target_": "torch.optim.lr_scheduler.CosineAnnealingLR",
        "_partial_": True,
        "T_max": "${trainer.max_epochs}",
    },
    "augment": {
        "_target_": "mouseemo.models.components.augment.FaceAugment",
        "strength": 1.0,
        "shift": 0.06,
        "rotation_deg": 6.0,
        "scale": 0.08,
        "brightness": 0.15,
        "contrast": 0.2,
        "gamma": 0.2,
        "blur_sigma": 1.5,
        "blur_p": 0.2,
        "noise_std": 0.03,
        "erase_p": 0.25,
        "erase_area": 0.12,
    },
    "class_weighting": "balanced",
    "label_smoothing": 0.05,
    "standardize": True,
    "classes": "${data.classes}",
    "reference": None,
    "init_from": None,
}
TORCHVISION_LR = {
    "resnet18": 0.001,
    "resnet34": 0.001,
    "efficientnet_b0": 0.002,
    "mobilenet_v3_small": 0.002,
    "mobilenet_v3_large": 0.002,
}


@pytest.mark.parametrize("name", sorted(TORCHVISION_LR))
def test_torchvision_model_configs_compose_as_before(name, tmp_path):
    """``model=<name> debug=fast`` gives the same model node (keys in the same order) as the full copies did,
    and the rest of the run's config is that of any other torchvision model."""
    from omegaconf import OmegaConf

    expected = copy.deepcopy(TORCHVISION_MODEL)
    expected["net"]["arch"] = name
    expected["optimizer"]["lr"] = TORCHVISION_LR[name]
    cfg = compose_cfg("train", [f"model={name}", "debug=fast"], tmp_path)
    model = OmegaConf.to_container(cfg.model, resolve=False)
    assert model == expected
    assert json.dumps(model) == json.dumps(expected)  # the same key order
    rest = OmegaConf.to_container(cfg, resolve=False)
    other = OmegaConf.to_container(
        compose_cfg("train", ["model=resnet18", "debug=fast"], tmp_path), resolve=False
    )
    for d in (rest, other):
        d.pop("model"), d.pop("hydra")
    assert rest == other
    assert cfg.hydra.runtime.choices["model"] == name
