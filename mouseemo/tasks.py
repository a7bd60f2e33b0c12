"""What ``train.py`` and ``evaluate.py`` run: :func:`run_task`, and the single runs ``train(cfg)`` and
``evaluate(cfg)`` (instantiate from the config, fit, test, save results).

:func:`run_task` runs one model (:func:`train`, then the baseline beside it, ``cfg.baseline``, from
:mod:`mouseemo.experiments.baseline`), tests a checkpoint (:func:`evaluate`), or runs the benchmark
when ``cfg.benchmark`` is set (:mod:`mouseemo.experiments.benchmark`, each of its jobs a
:func:`train`).

No Hydra decorator here: the functions take a composed ``DictConfig`` so tests and notebooks can
call them directly. Each run directory ends up with ``.hydra/`` (the config record),
``checkpoints/`` (best and last), ``splits.json``, ``metrics.json``, ``test_predictions.csv`` and
plots.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from mouseemo.errors import ConfigError, DataError
from mouseemo.experiments.baseline import run_baseline
from mouseemo.experiments.benchmark import is_rank_zero, run_benchmark
from mouseemo.experiments.collapse import collapse_of
from mouseemo.experiments.report import SCORES
from mouseemo.models.callbacks import is_weight_averaging
from mouseemo.models.checkpoint import (
    RECORD_KEY,
    RecordConfig,
    checkpoint_record,
    init_weights_from,
    read_checkpoint,
)
from mouseemo.utils.config_types import check_config_types
from mouseemo.utils.io import write_json_atomic, write_text_atomic
from mouseemo.viz.plots import plot_confusion_matrix, plot_per_class, plot_training_curves

log = logging.getLogger(__name__)


def _instantiate_list(cfg: DictConfig | None) -> list[Any]:
    out: list[Any] = []
    if not cfg:
        return out
    for _, conf in cfg.items():
        if isinstance(conf, DictConfig) and "_target_" in conf:
            out.append(instantiate(conf))
    return out


def _build(cfg: DictConfig) -> tuple[pl.LightningDataModule, pl.LightningModule, pl.Trainer]:
    # values of the wrong type (data.batch_size=abc) end here, naming the key, not deep inside torch
    for key in ("data", "trainer", "callbacks", "model"):  # model interpolates trainer values
        if cfg.get(key) is not None:
            check_config_types(cfg[key], key)
    if cfg.get("seed") is not None:
        pl.seed_everything(int(cfg.seed), workers=True)
    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model)
    callbacks = _instantiate_list(cfg.get("callbacks"))
    if not getattr(model, "automatic_optimization", True):
        # fitted in one pass (HOG models), nothing to average: weight averaging would only copy them
        dropped = [c for c in callbacks if is_weight_averaging(c)]
        if dropped:
            log.info("%s is not trained by gradient steps: weight averaging is off", type(model).__name__)
        callbacks = [c for c in callbacks if c not in dropped]
    callbacks.append(RecordConfig(checkpoint_record(cfg)))
    loggers = _instantiate_list(cfg.get("logger"))
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    record = _resolved(cfg)
    for lg in loggers:
        lg.log_hyperparams(record)
    return datamodule, model, trainer


def _resolved(cfg: DictConfig) -> dict:
    """The run's config with every interpolation resolved (the ``hydra`` node left out)."""
    return {
        k: OmegaConf.to_container(cfg[k], resolve=True)
        if isinstance(cfg[k], DictConfig | ListConfig)
        else cfg[k]
        for k in cfg
        if k != "hydra"
    }


def _finish(
    cfg: DictConfig, model: pl.LightningModule, trainer: pl.Trainer, metrics: dict, t0: float
) -> dict:
    out_dir = Path(cfg.paths.output_dir)

    _gather_test_rows(model, trainer)
    if not trainer.is_global_zero:  # one process writes the run directory
        return metrics

    classes = list(getattr(model, "classes", []))
    confmat = getattr(model, "test_confmat", None)
    if confmat is not None and classes:
        plot_confusion_matrix(confmat.numpy(), classes, out_dir / "confusion_matrix.png", title="test")
        per_class = {c: metrics.get(f"test/f1_{c}", float("nan")) for c in classes}
        plot_per_class(per_class, out_dir / "per_class_f1.png", title="test F1 per class")
        metrics["test/confusion_matrix"] = confmat.tolist()
    if hasattr(model, "write_test_predictions") and getattr(model, "test_rows", None):
        model.write_test_predictions(out_dir / "test_predictions.csv")
    for lg in trainer.loggers:
        if isinstance(lg, pl.loggers.CSVLogger):
            plot_training_curves(Path(lg.log_dir) / "metrics.csv", out_dir / "training_curves.png")
    metrics["wall_time_s"] = round(time.perf_counter() - t0, 2)
    write_json_atomic(out_dir / "metrics.json", metrics)
    write_text_atomic(out_dir / "config_resolved.yaml", OmegaConf.to_yaml(_resolved(cfg)))
    _log_files_to_wandb(trainer, out_dir)
    return metrics


def _gather_test_rows(model: pl.LightningModule, trainer: pl.Trainer) -> None:
    """Under DDP each process tested a shard: collect every row (once) on every process."""
    rows = getattr(model, "test_rows", None)
    if rows is None or trainer.world_size < 2 or not torch.distributed.is_initialized():
        return
    gathered: list = [None] * trainer.world_size
    torch.distributed.all_gather_object(gathered, rows)
    unique = {(r[0], r[1], r[2]): r for part in gathered for r in part}  # the sampler pads with repeats
    model.test_rows = [unique[k] for k in sorted(unique)]


def _close_loggers(trainer: pl.Trainer) -> None:
    """End wandb runs, so that a later run in the same process (benchmark, baseline) starts its own."""
    for lg in trainer.loggers:
        if isinstance(lg, pl.loggers.WandbLogger) and trainer.is_global_zero:
            lg.experiment.finish()


def _log_files_to_wandb(trainer: pl.Trainer, out_dir: Path) -> None:
    for lg in trainer.loggers:
        if isinstance(lg, pl.loggers.WandbLogger):
            import wandb

            names = (
                "splits.json",
                "metrics.json",
                "config_resolved.yaml",
                "confusion_matrix.png",
                ".hydra/config.yaml",
            )
            for name in names:
                if (out_dir / name).exists():
                    lg.experiment.save(str(out_dir / name), base_path=str(out_dir), policy="now")
            if (out_dir / "confusion_matrix.png").exists():
                lg.experiment.log(
                    {"test/confusion_matrix_plot": wandb.Image(str(out_dir / "confusion_matrix.png"))}
                )


def _scalars(d: dict) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in d.items()
        if torch.is_tensor(v) and v.numel() == 1 or isinstance(v, int | float)
    }


def run_task(task: str, cfg: DictConfig) -> dict:
    """What ``train.py`` / ``evaluate.py`` run: the benchmark when ``cfg.benchmark`` is set, else
    :func:`train` (then the baseline, ``cfg.baseline``, on the same split) or :func:`evaluate`.

    Raises:
        ConfigError: an unknown task.
    """
    if task not in ("train", "evaluate"):
        raise ConfigError(f"unknown task {task!r}: train or evaluate")
    if cfg.get("benchmark"):
        return run_benchmark(cfg, train)
    if task == "evaluate":
        return evaluate(cfg)
    metrics = train(cfg)
    if cfg.get("baseline") and cfg.get("test", True):
        base = run_baseline(cfg, metrics, train)
        if base is not None:
            metrics.update({f"baseline/test/{k}": base[f"test/{k}"] for k in SCORES if f"test/{k}" in base})
            if is_rank_zero():
                write_json_atomic(Path(cfg.paths.output_dir) / "metrics.json", metrics)
    return metrics


def train(cfg: DictConfig) -> dict:
    """Fit the configured model, test the best checkpoint, and save results in the run directory.

    One model only: the entry point (:func:`run_task`, what ``train.py`` calls)
    adds the baseline (``cfg.baseline``) or runs the benchmark (``cfg.benchmark``).
    """
    _refuse_benchmark(cfg)
    t0 = time.perf_counter()
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path and not Path(ckpt_path).is_file():
        raise DataError(f"checkpoint to resume from not found: {ckpt_path}")
    if ckpt_path:
        read_checkpoint(ckpt_path)  # refuses pickled objects with one line, before Lightning loads it
    init_from = cfg.model.get("init_from") if "model" in cfg else None
    if init_from and not ckpt_path:
        read_checkpoint(init_from)  # a missing or unsafe file stops here, before anything is built
    datamodule, model, trainer = _build(cfg)
    if init_from and not ckpt_path:  # resuming (ckpt_path=) restores the weights instead
        done = init_weights_from(model, init_from)
        log.info(
            "started from %s: %d tensors loaded, fresh: %s",
            init_from,
            done["loaded"],
            done["fresh"] or "none",
        )
    metrics: dict = {}
    if cfg.get("train", True):
        trainer.fit(model=model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        metrics.update(_scalars(trainer.callback_metrics))
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    metrics["best_ckpt"] = best
    if cfg.get("test", True):
        trainer.test(model=model, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
        metrics.update(_scalars(trainer.callback_metrics))
    metrics = _finish(cfg, model, trainer, metrics, t0)
    _close_loggers(trainer)
    if trainer.is_global_zero:
        _print_summary(metrics, _collapse_note(model))
    return metrics


def _collapse_note(model: pl.LightningModule) -> str:
    """``"one class: neutral (99%)"`` when the test predictions collapsed onto one class, else ``""``."""
    classes = list(getattr(model, "classes", []))
    preds = [r[5] for r in getattr(model, "test_rows", None) or []]
    return collapse_of(classes[p] if p < len(classes) else p for p in preds).note()


def _refuse_benchmark(cfg: DictConfig) -> None:
    if cfg.get("benchmark"):
        raise ConfigError(
            "this config is a benchmark (several models): run it with mouseemo.tasks.run_task, "
            "as train.py and evaluate.py do"
        )


def evaluate(cfg: DictConfig) -> dict:
    """Test a trained checkpoint (``ckpt_path``) on the configured data's test split.

    A benchmark config (``experiment=benchmark``) goes through :func:`run_task`.
    """
    _refuse_benchmark(cfg)
    t0 = time.perf_counter()
    ckpt_path = cfg.get("ckpt_path")
    if not ckpt_path:
        raise ConfigError("evaluate needs ckpt_path=PATH/TO/model.ckpt")
    if not Path(ckpt_path).is_file():
        raise DataError(f"checkpoint not found: {ckpt_path}")
    datamodule, model, trainer = _build(cfg)
    check_checkpoint_matches(ckpt_path, model)  # reads it as data first (read_checkpoint)
    trainer.test(model=model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    metrics = _scalars(trainer.callback_metrics)
    metrics["ckpt_path"] = str(ckpt_path)
    metrics = _finish(cfg, model, trainer, metrics, t0)
    _close_loggers(trainer)
    if trainer.is_global_zero:
        _print_summary(metrics, _collapse_note(model))
    return metrics


def check_checkpoint_matches(ckpt_path: str | Path, model: pl.LightningModule) -> None:
    """Refuse a checkpoint of another model, class list or network shape than the configured one."""
    ckpt = read_checkpoint(ckpt_path)
    record = ckpt.get(RECORD_KEY) or {}
    target = (record.get("model") or {}).get("_target_")
    own_target = f"{type(model).__module__}.{type(model).__qualname__}"
    if target and target != own_target:
        raise ConfigError(
            f"{ckpt_path} holds a {target.rsplit('.', 1)[-1]} model but the config builds "
            f"{own_target.rsplit('.', 1)[-1]}: pass the model=... it was trained with"
        )
    net_record = (record.get("model") or {}).get("net") or {}
    net = getattr(model, "net", None)
    saved = net_record.get("arch") or str(net_record.get("_target_", "")).rsplit(".", 1)[-1]
    own = getattr(net, "arch", None) or type(net).__name__
    if saved and net is not None and saved != own:
        raise ConfigError(f"{ckpt_path} holds a {saved} network but the config builds {own}")
    classes = ckpt.get("hyper_parameters", {}).get("classes")
    if classes is not None and list(classes) != list(getattr(model, "classes", classes)):
        raise ConfigError(
            f"{ckpt_path} was trained on classes {list(classes)}, the config has {list(model.classes)}"
        )
    saved_ref = ckpt.get("hyper_parameters", {}).get("reference")
    own_ref = getattr(model, "reference", None)
    if "reference" in ckpt.get("hyper_parameters", {}) and saved_ref != own_ref:
        raise ConfigError(
            f"{ckpt_path} was trained with model.reference={saved_ref or 'null'}, the config has "
            f"{own_ref or 'null'}: pass model.reference={saved_ref or 'null'}"
        )
    own = model.state_dict()
    bad = [k for k, v in ckpt["state_dict"].items() if k in own and tuple(own[k].shape) != tuple(v.shape)]
    missing = [k for k in own if k not in ckpt["state_dict"]]
    if bad or missing:
        raise ConfigError(
            f"{ckpt_path} does not fit the configured model (model={model.__class__.__name__}): "
            f"{len(missing)} missing and {len(bad)} mis-shaped weights, e.g. {(missing + bad)[:3]}"
        )


def _print_summary(metrics: dict, note: str = "") -> None:
    keys = ("test/accuracy", "test/balanced_accuracy", "test/macro_f1")
    keys += ("test/retrieval_top5", "test/ve_population", "test/knn_f1_embedding")  # joint encoder
    keys = [k for k in keys if k in metrics]
    if keys:
        flag = f"  [collapsed: {note}]" if note else ""
        print("test: " + "  ".join(f"{k.split('/')[1]}={metrics[k]:.3f}" for k in keys) + flag)
    print(json.dumps({k: metrics[k] for k in ("best_ckpt", "wall_time_s") if k in metrics}))
