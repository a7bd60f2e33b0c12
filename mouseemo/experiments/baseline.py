"""The baseline beside a training run: :func:`run_baseline` fits one more model (``cfg.baseline``, by
default the HOG prototypes) on the same split after :func:`mouseemo.tasks.train`, and prints its test
metrics beside the trained model's."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, open_dict

from mouseemo.experiments.benchmark import TrainFn, is_rank_zero, job_config
from mouseemo.experiments.collapse import collapse_of_file
from mouseemo.experiments.report import SCORES, format_value
from mouseemo.utils.configs import compose_model

log = logging.getLogger(__name__)


def run_baseline(cfg: DictConfig, metrics: dict, train: TrainFn) -> dict | None:
    """Fit ``cfg.baseline`` (a model config name) on the same split with ``train`` and print it beside
    ``metrics``.

    Returns:
        The baseline's test metrics, or ``None`` when no baseline is configured or the trained model
        is the baseline itself.
    """
    name = cfg.get("baseline")
    if not name:
        return None
    base_cfg = compose_model(str(name))
    if base_cfg.get("_target_") == cfg.model.get("_target_"):
        return None
    if "test/macro_f1" not in metrics:  # the trained model is no frame classifier (e.g. the joint encoder)
        log.warning("baseline=%s skipped: the trained model reports no test/macro_f1 to compare with", name)
        return None
    out = Path(cfg.paths.output_dir) / "baseline"
    sub = job_config(cfg, base_cfg, out, shuffle=bool(cfg.data.get("shuffle_train_labels")), csv_only=True)
    with open_dict(sub):
        sub.callbacks = {k: v for k, v in (sub.get("callbacks") or {}).items() if k != "model_summary"}
    base = train(sub)
    rows = [{"model": _model_name(cfg.model) + " (this run)"}, {"model": f"{name} (baseline)"}]
    for row, m, run in zip(rows, (metrics, base), (Path(cfg.paths.output_dir), out)):
        for key in SCORES:
            row[key] = float(m.get(f"test/{key}", float("nan")))
        verdict = collapse_of_file(run / "test_predictions.csv")
        row["note"] = f"collapsed: {verdict.note()}" if verdict and verdict.collapsed else ""
    cols = ["model", *SCORES]
    width = max(len(r["model"]) for r in rows)
    if not is_rank_zero():
        return base
    print("\nsame split, held-out test frames:")
    print(f"{'':{width}}  " + "  ".join(f"{c:>17}" for c in SCORES))
    for r in rows:
        cells = "  ".join(f"{format_value(r[c]):>17}" for c in cols[1:])
        print(f"{r['model']:{width}}  {cells}" + (f"  [{r['note']}]" if r["note"] else ""))
    return base


def _model_name(model_cfg: DictConfig) -> str:
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        choice = HydraConfig.get().runtime.choices.get("model")
        if choice:
            return str(choice)
    net = model_cfg.get("net")
    if isinstance(net, DictConfig):
        target = str(net.get("arch") or net.get("_target_", "")).rsplit(".", 1)[-1]
        return target
    return str(model_cfg.get("_target_", "model")).rsplit(".", 1)[-1]
