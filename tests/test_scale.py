"""Scale: loggers (CSV, TensorBoard, wandb offline), Hydra sweeps, Optuna, DDP with 2 CPU processes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra

from mouseemo import tasks
from tests.helpers import check_reported_scores, write_dataset
from tests.test_configs import compose_cfg
from tests.test_train import small

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("ds"), num_mice=3, num_frames=80)


def _cli(script, args, cwd, timeout=600):
    GlobalHydra.instance().clear()
    return subprocess.run(
        [sys.executable, str(REPO / script), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def _tiny(dataset, *extra):
    """CLI overrides of a tiny run; the CNN-only keys are left out for other models."""
    return [
        f"data.root={dataset}", "data.synthesize=null", "data.image_size=[24,32]", "data.batch_size=32",
        "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "baseline=null", *extra,
    ]  # fmt: skip


def test_wandb_offline_logs_config_and_splits(dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "run"
    tasks.train(compose_cfg("train", small(dataset, run, "logger=wandb", "tags=[unit]"), tmp_path))
    (offline,) = list((run / "wandb").glob("offline-run-*"))
    files = offline / "files"
    assert json.loads((files / "splits.json").read_text()) == json.loads((run / "splits.json").read_text())
    resolved = (files / "config_resolved.yaml").read_text()
    assert "mouseemo.models.classifier_module.ClassifierLitModule" in resolved
    assert "${" not in resolved  # interpolations resolved
    assert (files / "metrics.json").is_file()
    assert (run / "csv" / "version_0" / "metrics.csv").is_file()  # CSV alongside


def test_tensorboard_logger_writes_events(dataset, tmp_path):
    pytest.importorskip("tensorboard", reason="needs the [tensorboard] extra")
    run = tmp_path / "run"
    tasks.train(compose_cfg("train", small(dataset, run, "logger=tensorboard"), tmp_path))
    events = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    assert "val/macro_f1" in acc.Tags()["scalars"]


def test_multirun_over_models_and_seeds(dataset, tmp_path):
    proc = _cli(
        "train.py",
        ["-m", "model=cnn,hog_proto", "seed=1", *_tiny(dataset), f"paths.root_dir={tmp_path}"],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep,) = list((tmp_path / "logs" / "train" / "multiruns").iterdir())
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert len(jobs) == 2
    models = set()
    for job in jobs:
        overrides = (job / ".hydra" / "overrides.yaml").read_text()
        metrics = json.loads((job / "metrics.json").read_text())
        check_reported_scores(metrics, job)
        assert "seed=1" in overrides
        models.add("model=hog_proto" in overrides)
    assert models == {True, False}


@pytest.mark.slow
def test_multirun_backbones_three_seeds(dataset, tmp_path):
    args = ["-m", "model=cnn,mobilenet_v3_small", "seed=1,2,3", *_tiny(dataset), f"paths.root_dir={tmp_path}"]
    proc = _cli("train.py", args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep,) = list((tmp_path / "logs" / "train" / "multiruns").iterdir())
    assert len([p for p in sweep.glob("*/metrics.json")]) == 6


@pytest.mark.slow
def test_optuna_search_runs_trials(dataset, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="needs the [cluster] extra")
    args = [
        "-m", "experiment=optuna_search", "hydra.sweeper.n_trials=3",
        "hydra.sweeper.params.model='choice(cnn,mobilenet_v3_small)'", *_tiny(dataset), f"paths.root_dir={tmp_path}",
    ]  # fmt: skip
    proc = _cli("train.py", args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep,) = list((tmp_path / "logs" / "train" / "multiruns").iterdir())
    assert len(list(sweep.glob("*/metrics.json"))) == 3
    best = (sweep / "optimization_results.yaml").read_text()
    assert "best_value" in best and "model.optimizer.lr" in best


@pytest.mark.slow
@pytest.mark.parametrize("model", ["cnn", "hog_proto"])
def test_ddp_two_cpu_processes(dataset, tmp_path, model):
    """Lightning's DDP over gloo with 2 processes, through train.py; then evaluate and resume."""
    args = [
        *_tiny(dataset, f"model={model}", "trainer=ddp_cpu", "trainer.max_epochs=2"),
        f"paths.root_dir={tmp_path}",
    ]
    if model == "cnn":
        args.append("model.net.widths=[8,16]")
    proc = _cli("train.py", args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = list((tmp_path / "logs" / "train" / "runs").iterdir())
    assert (run / "train_ddp_process_1.log").is_file()  # the second process ran
    metrics = json.loads((run / "metrics.json").read_text())
    splits = json.loads((run / "splits.json").read_text())
    num_test = sum(b - a for ranges in splits["test"].values() for a, b in ranges)
    rows = (run / "test_predictions.csv").read_text().splitlines()
    assert len(rows) - 1 == len(range(0, num_test, 2))  # both shards, once each (eval_stride 2)
    assert sum(map(sum, metrics["test/confusion_matrix"])) >= len(rows) - 1
    assert (run / "checkpoints" / "last.ckpt").is_file()
    if model == "cnn":  # resume the DDP run for one more epoch
        resume = [*args, "trainer.max_epochs=3", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"]
        proc = _cli("train.py", resume, tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
