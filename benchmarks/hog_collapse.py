"""Why HOG rows collapse onto one class: the evidence, before and after a change of HOG settings.

For each HOG model (``--models``) and each setting (``before``: what mouseemo used to ship, 12-px
cells on the 72 x 96 frames, least-neutral prototypes, pure forest leaves; ``after``: the config
defaults; more with ``--setting "NAME=OVERRIDE ..."``), it fits the model on one split of a cohort (``--experiment`` picks its data;
``--fold`` holds out one animal), tests it on the held-out animal and prints:

* balanced accuracy, and whether the row collapsed (:mod:`mouseemo.experiments.collapse`: one class
  for >= 95% of the test frames), with the per-class prediction counts beside the label counts;
* the score distribution on the test frames: for prototypes the best emotion's similarity minus
  neutral's (percentiles; neutral wins where it is below 0), for the forest the mean probability of
  each class;
* transfer: how similar the animals' expression changes are in HOG space (per animal and class,
  the mean HOG of that class's frames minus the mean of its baseline frames; the cosine between two
  animals' changes of one class, averaged over animal pairs, beside the same for two *different*
  classes). Prototypes and forests learnt on some animals can only read another animal whose
  changes point the same way; when same-class and other-class cosines are alike, what varies is
  nuisance (camera position, lighting drift), not expression.

    python benchmarks/hog_collapse.py --experiment benchmark_dev --fold 1 --labels truth
    python benchmarks/hog_collapse.py --root data/fresh --mice 4 --minutes 3 --nuisance high

With ``--root`` a cohort is synthesized there (``--mice``, ``--minutes``, ``--nuisance``, ``--seed``)
unless it exists. Run directories go to ``--out`` (a temporary folder by default).
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from collections import Counter
from pathlib import Path

import _harness
import numpy as np

from mouseemo.experiments.collapse import collapse_of
from mouseemo.tasks import train

#: HOG settings before the change (12-px cells at 72 x 96, 6 x 8 cells; prototypes from the k frames
#: least like neutral), and the defaults now.
SETTINGS = {"before": ["model.hog.pixels_per_cell=[12,12]"], "after": []}
#: ``before`` also restores the former prototype mode and the forest's pure leaves.
BEFORE = {"hog_proto": ["model.mode=least-neutral"], "hog_rf": ["model.min_samples_leaf=1"]}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--experiment", default=None, help="experiment config whose data to use (e.g. benchmark_dev)"
    )
    p.add_argument("--root", default=None, help="dataset root (synthesized there when empty)")
    p.add_argument("--mice", type=int, default=4, help="animals of a synthesized cohort")
    p.add_argument("--minutes", type=float, default=3.0, help="minutes per session of a synthesized cohort")
    p.add_argument("--nuisance", default="high", help="nuisance of a synthesized cohort: low, medium, high")
    p.add_argument("--seed", type=int, default=0, help="seed of a synthesized cohort")
    p.add_argument(
        "--fold", type=int, default=None, help="leave-one-animal-out fold (default: the split's seed)"
    )
    p.add_argument("--labels", default="truth", help="label source: truth or events")
    p.add_argument("--models", nargs="+", default=["hog_proto", "hog_rf"], help="HOG model configs")
    p.add_argument("--setting", action="append", default=[], metavar="NAME=OV1 OV2",
                   help="another setting: a name and space-separated Hydra overrides (quoted)")  # fmt: skip
    p.add_argument("--only", nargs="+", default=None, help="run only these settings (names)")
    p.add_argument("--out", default=None, help="run directories (default: a temporary folder)")
    return p.parse_args(argv)


def data_overrides(args: argparse.Namespace) -> list[str]:
    over = [f"experiment={args.experiment}", "benchmark=null"] if args.experiment else []
    if args.root:
        over += [f"data.root={Path(args.root).resolve()}", f"data.synthesize.num_mice={args.mice}",
                 f"data.synthesize.minutes={args.minutes}", f"data.synthesize.nuisance={args.nuisance}",
                 f"data.synthesize.seed={args.seed}"]  # fmt: skip
    if args.fold is not None:
        over.append(f"data.split.fold={args.fold}")
    over.append(f"data.label_source={args.labels}")
    if args.labels == "events":
        over.append("data.outside=neutral")
    return over


def transfer(cfg) -> tuple[float, float]:
    """Mean cosine between animals' HOG changes (class mean - baseline mean): same class, other classes."""
    from hydra.utils import instantiate

    from mouseemo.ops import hog

    dm = instantiate(cfg.data)
    dm.setup("fit")
    dm.setup("test")
    kw = dict(cfg.model.hog)
    per: dict[str, list] = {}
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        for b in loader:
            f = hog(b["image"][:, 0], **kw).double().numpy()
            for i, a in enumerate(b["animal"]):
                per.setdefault(a, []).append((int(b["label"][i]), f[i]))
    changes = {}
    for a, rows in per.items():
        y = np.array([r[0] for r in rows])
        x = np.array([r[1] for r in rows])
        if not (y == 0).any():
            continue
        base = x[y == 0].mean(0)
        changes[a] = {k: x[y == k].mean(0) - base for k in np.unique(y) if k > 0}

    def cos(u, v):
        return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v) + 1e-12))

    animals = sorted(changes)
    same, other = [], []
    for i, a in enumerate(animals):
        for b in animals[i + 1 :]:
            for k, u in changes[a].items():
                for m, v in changes[b].items():
                    (same if k == m else other).append(cos(u, v))
    return float(np.mean(same)), float(np.mean(other))


def describe(run: Path, classes: list[str]) -> None:
    with open(run / "test_predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    preds, labels = Counter(r["pred"] for r in rows), Counter(r["label"] for r in rows)
    verdict = collapse_of(rows)
    print(
        f"    collapsed: {verdict.collapsed} (most predicted {verdict.dominant}, {verdict.share:.1%} of frames)"
    )
    print("    class          labels  predicted")
    for c in classes:
        print(f"    {c:13s} {labels.get(c, 0):7d} {preds.get(c, 0):10d}")
    cols = [k for k in rows[0] if k.startswith(("similarity_", "prob_"))]
    scores = np.array([[float(r[k]) for k in cols] for r in rows])
    if cols[0].startswith("similarity_"):
        names = [k.split("_", 1)[1] for k in cols]
        j = names.index("neutral")
        margin = np.delete(scores, j, axis=1).max(axis=1) - scores[:, j]
        pct = np.percentile(margin, [5, 25, 50, 75, 95])
        print("    best emotion - neutral similarity, percentiles 5/25/50/75/95: "
              + " ".join(f"{v:+.4f}" for v in pct) + f"  (neutral wins on {np.mean(margin < 0):.0%})")  # fmt: skip
    else:
        print("    mean probability: " + " ".join(f"{k[5:]}={v:.3f}" for k, v in zip(cols, scores.mean(0))))


def main(argv=None) -> int:
    args = parse_args(argv)
    settings = dict(SETTINGS)
    for s in args.setting:
        name, _, over = s.partition("=")
        settings[name] = over.split()
    if args.only:
        settings = {k: v for k, v in settings.items() if k in args.only}
    out = Path(args.out or tempfile.mkdtemp(prefix="hog_collapse_"))
    base = data_overrides(args) + ["baseline=null", "logger=none", "trainer.enable_progress_bar=false",
                                   "callbacks=none"]  # fmt: skip
    for name, over in settings.items():
        for model in args.models:
            extra = ["model.num_jobs=1"] if model == "hog_rf" else []
            if name == "before":
                extra += BEFORE.get(model, [])
            run_dir = out / f"{name}_{model}"
            cfg = _harness.train_config([f"model={model}", *base, *extra, *over], out_dir=run_dir)
            metrics = train(cfg)
            print(f"\n== {model}, {name} ({' '.join(over) or 'config defaults'}): "
                  f"balanced accuracy {metrics['test/balanced_accuracy']:.3f}, "
                  f"macro-F1 {metrics['test/macro_f1']:.3f}")  # fmt: skip
            describe(run_dir / "run", list(cfg.data.classes))
            same, other = transfer(cfg)
            print(f"    transfer across animals (cells {list(cfg.model.hog.pixels_per_cell)}): "
                  f"cos same class {same:.3f}, other classes {other:.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
