"""Coverage against accuracy: how much macro-F1 rises on the frames ``mouseemo predict`` calls rateable.

    python benchmarks/rateable.py --markdown docs/results/rateable.md     # report cohort, folds 0 1 2
    python benchmarks/rateable.py --folds 0 1 2 3 --epochs 12              # more folds, the full recipe

On the report cohort (``conf/experiment/benchmark_report.yaml``: eight synthetic animals of one
minute with strong nuisance, seed 202), per leave-one-animal-out fold:

1. trains the default model (``conf/train.yaml``: ``motion_cnn``) on the fold's training animals
   (``--epochs``; the report's image size);
2. predicts the validation animal's video, and fits the learned unrateable score
   (:class:`mouseemo.inference.rateable_model.RateableModel`) on its frames: the image features
   against a paw over the snout or a blink in the synthetic truth, the classifier's confidence,
   entropy and label agreement against wrong labels; it is stored beside the checkpoint
   (``<ckpt>.rateable.json``) with the threshold that kept 90% of those frames;
3. predicts the held-out animal's video with ``mouseemo predict``'s pipeline (which reads the
   sidecar) and scores the ``unrateable_score`` column against the truth: macro-F1 on the kept
   frames as the threshold moves, beside the rules alone (blur, face, low confidence) and beside the
   classifier's confidence alone (``1 - top probability``).

Coverage is the fraction of the held-out animal's frames kept; thresholds for a coverage are that
animal's score quantiles (how a user picks a coverage), and the row ``stored threshold`` uses the one
chosen on the validation animal. Nothing is tuned on the held-out animals.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import _harness
import numpy as np

COVERAGES = (1.0, 0.95, 0.9, 0.8, 0.7, 0.5)


def report_settings() -> dict:
    """The report cohort's world and split (``conf/experiment/benchmark_report.yaml``)."""
    from omegaconf import OmegaConf

    exp = OmegaConf.load(_harness.REPO / "conf" / "experiment" / "benchmark_report.yaml")
    return OmegaConf.to_container(exp.data, resolve=False)


def train_fold(data: Path, out: Path, fold: int, epochs: int, seed: int, overrides: list[str]) -> dict:
    """Train the default model on fold ``fold`` (reused when ``out`` holds a finished run)."""
    from mouseemo import tasks

    done = out / "fold.json"
    if done.is_file():  # the checkpoint is stored relative to the fold's folder, so it can move
        record = json.loads(done.read_text())
        return {**record, "ckpt": str(out / record["ckpt"])}
    rep = report_settings()
    synth = [f"data.synthesize.{k}={v}" for k, v in rep["synthesize"].items()]
    over = [
        f"data.root={data}", *synth, f"data.split.fold={fold}",
        f"data.split.val_animals={rep['split']['val_animals']}",
        f"trainer.max_epochs={epochs}", f"seed={seed}", "logger=none", "baseline=null", "test=false",
        *overrides,
    ]  # fmt: skip
    metrics = tasks.train(_harness.train_config(over, out))
    splits = json.loads((out / "run" / "splits.json").read_text())
    ckpt = Path(metrics["best_ckpt"]).resolve().relative_to(out.resolve())
    record = {"ckpt": str(ckpt), "animals": splits["animals"], "overrides": over}
    done.write_text(json.dumps(record, indent=1))
    return {**record, "ckpt": str(out / ckpt)}


def predict_animal(data: Path, animal: str, ckpt: str, out: Path) -> Path:
    """Predict the animal's session(s) with the checkpoint; the summary JSON of its first session."""
    from mouseemo.inference.inputs import resolve_inputs
    from mouseemo.inference.pipeline import PredictOptions, predict_video
    from mouseemo.inference.scorers import load_scorer

    scorer = load_scorer(None, ckpt, "cpu")
    item = resolve_inputs([str(sorted((data / animal).iterdir())[0])], None, True)[0]
    predict_video(item, scorer, out, PredictOptions(plot=False, overwrite=True))
    return out / f"{item.stem}.json"


def truth_of(summary: Path) -> tuple[np.ndarray, np.ndarray]:
    """Class indices and nuisance frames of a predicted synthetic session, from its truth file."""
    from mouseemo.data.session import read_truth_frames
    from mouseemo.inference.rateable import synthetic_nuisance

    video = Path(json.loads(summary.read_text())["video"])
    truth = read_truth_frames(video.parent / "truth" / "frames.csv")
    return truth["label"], synthetic_nuisance(truth)


def predicted(table: dict) -> np.ndarray:
    from mouseemo.constants import EMOTION_INDEX

    return np.array([EMOTION_INDEX[x] for x in table["label"]])


def run_fold(data: Path, work: Path, fold: int, args) -> dict:
    from sklearn.metrics import roc_auc_score

    from mouseemo.inference.rateable import (
        RateableModel,
        coverage_curve,
        prediction_features,
        rule_masks,
        sidecar_path,
        thresholds_for_coverage,
    )

    t0 = time.perf_counter()
    rec = train_fold(data, work / f"fold{fold}", fold, args.epochs, args.seed, args.overrides)
    ckpt = rec["ckpt"]
    val, test = rec["animals"]["val"][0], rec["animals"]["test"][0]
    sidecar_path(ckpt).unlink(missing_ok=True)
    val_summary = predict_animal(data, val, ckpt, work / f"fold{fold}" / "val")
    feats, table = prediction_features(val_summary)
    y, nuisance = truth_of(val_summary)
    model = RateableModel.fit(
        feats, nuisance, predicted(table) != y, fitted_on=f"{val} (validation animal of fold {fold})"
    )
    model.save(sidecar_path(ckpt))
    summary = predict_animal(data, test, ckpt, work / f"fold{fold}" / "test")
    feats, table = prediction_features(summary)
    y, nuisance = truth_of(summary)
    pred = predicted(table)
    with open(summary.with_suffix(".csv"), newline="") as fh:
        rows = list(csv.DictReader(fh))
    learned = np.array([float(r["unrateable_score"]) for r in rows])
    rules = np.logical_or.reduce(list(rule_masks(feats, 0.5).values())).astype(float)
    scores = {"learned": learned, "rules": rules, "confidence": 1.0 - feats["confidence"]}
    curves = {}
    for name, s in scores.items():
        ts = thresholds_for_coverage(s, COVERAGES) if name != "rules" else np.array([0.0, 1.0])
        curves[name] = coverage_curve(s, y, pred, ts)
    stored = coverage_curve(learned, y, pred, [model.threshold])[0]
    wrong = pred != y
    out = {
        "fold": fold, "val": val, "test": test, "curves": curves, "stored": stored,
        "nuisance_frames": int(nuisance.sum()), "frames": len(y), "error_rate": float(wrong.mean()),
        "auc_nuisance": float(roc_auc_score(nuisance, learned)) if 0 < nuisance.sum() < len(y) else None,
        "auc_wrong": float(roc_auc_score(wrong, learned)) if 0 < wrong.sum() < len(y) else None,
        "seconds": time.perf_counter() - t0,
    }  # fmt: skip
    return out


def at_coverage(curve: list[dict], coverage: float) -> dict:
    return min(curve, key=lambda c: abs(c["coverage"] - coverage))


def curve_row(result: dict, label: str, c: dict) -> list:
    gain = c["macro_f1_kept"] - c["macro_f1_all"]
    cells = [c["coverage"], c["macro_f1_kept"], c["macro_f1_all"]]
    return [result["fold"], result["test"], label, *[f"{v:.3f}" for v in cells], f"{gain:+.3f}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--data", default="data/synthetic_report_m8", help="the report world (generated if empty)"
    )
    ap.add_argument("--work", default="data/benchmarks/rateable", help="training runs and predictions")
    ap.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2], help="leave-one-animal-out folds")
    ap.add_argument("--epochs", type=int, default=6, help="training epochs per fold")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides of the training config")
    _harness.add_markdown_argument(ap)
    args = ap.parse_args()
    data, work = Path(args.data).resolve(), Path(args.work).resolve()
    results = [run_fold(data, work, f, args) for f in args.folds]

    report = _harness.Report(args.markdown, seed=args.seed)
    report.line(
        f"Report cohort (8 synthetic animals, 1 min each, strong nuisance, world seed 202); default model "
        f"`motion_cnn`, {args.epochs} epochs per fold; folds {', '.join(map(str, args.folds))} (one held-out "
        "animal each). The learned score is fitted on the validation animal: image features against nuisance "
        "(paw, blink), the classifier's confidence, entropy and label agreement against wrong labels. "
        "Macro-F1 over the held-out animal's frames (the classes present or predicted among all of them): "
        "all frames, and the kept ones. `rules only`: blur, face and low confidence (0.5)."
    )
    report.line()
    report.table(["fold", "held out", "score", "coverage", "macro-F1 kept", "macro-F1 all", "gain"])
    gains = {}
    for r in results:
        for name in ("learned", "confidence"):
            for cov in COVERAGES[1:]:
                c = at_coverage(r["curves"][name], cov)
                gains.setdefault((name, cov), []).append(c["macro_f1_kept"] - c["macro_f1_all"])
                report.row(curve_row(r, name, c))
        for label, c in (("rules only", r["curves"]["rules"][0]), ("stored threshold", r["stored"])):
            report.row(curve_row(r, label, c))
    report.line()
    report.table(["score", "coverage", "mean gain in macro-F1 (kept - all)", "lowest fold", "folds"])
    for (name, cov), g in gains.items():
        report.row([name, cov, f"{np.mean(g):+.3f}", f"{np.min(g):+.3f}", len(g)])
    report.line()
    report.table(["fold", "frames", "nuisance frames", "error rate", "AUC nuisance", "AUC wrong", "seconds"])
    for r in results:
        auc_n = "n/a" if r["auc_nuisance"] is None else f"{r['auc_nuisance']:.3f}"
        auc_w = "n/a" if r["auc_wrong"] is None else f"{r['auc_wrong']:.3f}"
        report.row([r["fold"], r["frames"], r["nuisance_frames"], f"{r['error_rate']:.3f}", auc_n, auc_w,
                    f"{r['seconds']:.0f}"])  # fmt: skip
    report.write()
    (work / "rateable.json").write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
