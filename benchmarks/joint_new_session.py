"""A new imaging day: the joint encoder on a session it was never trained on, through a fitted layer.

    python benchmarks/joint_new_session.py                  # seed 1 world, 15 epochs, a new day of a known animal
    python benchmarks/joint_new_session.py --new animal --holdout tail --fit-minutes 2
    python benchmarks/joint_new_session.py model.neural_encoder.hidden=128 data.window=16   # another recipe

Every new day is a new field of view, so it needs its own neural input layer. This trains the joint
encoder (``experiment=joint``) on part of a synthetic paired world, then does what a lab does with a
new session: ``mouseemo embed --fit-session-layer`` fits the session's input layer on part of its
paired data with both towers frozen, and embeds the whole session. ``--holdout blocks`` (default)
fits on 7 of 10 contiguous time blocks and checks on the other 3 (``gap_s`` dropped around every
boundary), so the unseen windows cover the whole session; ``--holdout tail`` fits on the first
``--fit-minutes`` and checks on the rest, which in the synthetic schedule is mostly malaise, a state
the fitted minutes never show. Two cases (``--new``):

- ``day`` (default): 2 animals × 2 sessions; training sees every animal's first session, and the
  new session is the second animal's second day (a face the face tower knows, another day's
  stimulus schedule and camera, a layer fitted from scratch);
- ``animal``: training sees the first animal only, and the new session is the second animal's
  (a face the face tower has never seen).

The table scores the new session on its fitted windows and on its unseen ones:

- cross-modal retrieval (top-1 and top-5 within 1 s, both directions, beside chance);
- emotion decoding: a kNN (k=5) fitted on the fitted windows predicts the unseen windows' labels, from the neural embedding, from the face embedding and from raw activity (the window mean
  of z-scored dF/F), macro-F1 beside the same decoder on circularly shifted training labels.

The trained sessions' own held-out time blocks (the training run's test metrics) are the reference
row. Extra arguments are Hydra overrides of the model, as in ``benchmarks/joint.py``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import _harness
import numpy as np

from mouseemo.data.neural_datamodule import full_windows
from mouseemo.models import joint_metrics as jm


def paired(session_dir: Path, ckpt: str, cache_dir: Path) -> dict:
    """The session's camera times, windows and (not z-scored) activity, with ``ckpt``'s settings."""
    from mouseemo.data.session import Session
    from mouseemo.inference.embed import joint_module, paired_session

    return paired_session(Session.open(session_dir), joint_module(ckpt), cache_dir)


def raw_windows(p: dict, fit_frames: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Window means of the session's z-scored activity (statistics from the fitted frames)."""
    from mouseemo.data.neural_datamodule import zscore_activity

    neural, _, _ = zscore_activity(p["neural_raw"], p["valid"], fit_frames & p["valid"])
    idx = ends[:, None] + np.arange(-p["window"] + 1, 1)[None]
    return neural[idx].mean(axis=1).astype(np.float32)


def decode(
    x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, metric: str
) -> tuple[float, float]:
    """kNN macro-F1 on ``test`` from ``train``, and with circularly shifted training labels."""
    y_tr = y[train]
    pred = jm.knn_decode(x[train], y_tr, x[test], 5, metric=metric)
    pred_s = jm.knn_decode(x[train], y_tr[jm.half_roll(np.zeros(len(y_tr)))], x[test], 5, metric=metric)
    return jm.macro_f1(y[test], pred), jm.macro_f1(y[test], pred_s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="data/benchmarks/joint", help="where the sessions are generated")
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--size", default="64x80", help="video H x W")
    ap.add_argument("--neurons", type=int, default=120)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--fit-minutes", type=float, default=3.0, help="minutes of the new session its layer is fitted on"
    )
    ap.add_argument(
        "--gap-s", type=float, default=2.0, help="seconds after the fitted minutes left out of both parts"
    )
    ap.add_argument(
        "--new", choices=("day", "animal"), default="day", help="what the new session is (see above)"
    )
    ap.add_argument("--holdout", choices=("blocks", "tail"), default="blocks",
                    help="blocks: fit on time blocks, check on the others; tail: fit on the first --fit-minutes")  # fmt: skip
    ap.add_argument("--blocks", type=int, default=10, help="time blocks (--holdout blocks)")
    ap.add_argument(
        "--test-fraction", type=float, default=0.3, help="share of blocks kept unseen (--holdout blocks)"
    )
    ap.add_argument("--reuse", action="store_true", help="reuse the finished training run if present")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides for the model")
    _harness.add_markdown_argument(ap)
    args = ap.parse_args()
    report = _harness.Report(args.markdown, seed=args.seed)
    import torch

    torch.set_num_threads(args.threads)
    from mouseemo import tasks
    from mouseemo.data.synthetic import generate_dataset
    from mouseemo.inference.embed import embed_session
    from mouseemo.inference.session_layer import fit_session_layer

    h, w = (int(v) for v in args.size.split("x"))
    sessions = 2 if args.new == "day" else 1
    days = "_2days" if sessions > 1 else ""
    world = Path(args.data) / f"2mice_{args.minutes:g}min_{args.size}_seed{args.seed}{days}"
    if not (world / "manifest.csv").is_file():
        generate_dataset(world, num_mice=2, minutes=args.minutes, seed=args.seed, size=(h, w),
                         num_neurons=args.neurons, num_sessions=sessions, workers=1)  # fmt: skip
    animals = sorted(p.name for p in world.iterdir() if p.is_dir() and not p.name.startswith("."))
    if args.new == "animal":
        train_sessions, new_session = [world / animals[0] / "s01"], world / animals[1] / "s01"
        trained = animals[0]
    else:
        train_sessions, new_session = [world / a / "s01" for a in animals], world / animals[1] / "s02"
        trained = "+".join(f"{a}/s01" for a in animals)
    new = f"{new_session.parent.name}/{new_session.name}"
    train_root = world.parent / f"{world.name}_train_{args.new}"
    for src in train_sessions:
        dst = train_root / src.parent.name / src.name
        if not dst.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".cache"))
    tag = "".join("_" + "".join(c if c.isalnum() else "-" for c in o) for o in args.overrides)
    out = world.parent / f"runs_{train_root.name}_e{args.epochs}{tag}"
    over = ["experiment=joint", f"data.root={train_root}", "data.synthesize=null", f"trainer.max_epochs={args.epochs}",
            "trainer.enable_progress_bar=false", f"seed={args.seed}", *args.overrides]  # fmt: skip
    saved = out / "run" / "metrics.json"
    if args.reuse and saved.is_file():
        metrics = json.loads(saved.read_text())
        train_s = float(metrics.get("wall_time_s", float("nan")))
    else:
        t0 = time.perf_counter()
        metrics = tasks.train(_harness.train_config(over, out))
        train_s = time.perf_counter() - t0
    ckpt = metrics.get("best_ckpt") or str(out / "run" / "checkpoints" / "last.ckpt")

    cache = out / "cache"
    p = paired(new_session, ckpt, cache)
    times = p["times"]
    if args.holdout == "blocks":
        from mouseemo.data.splits import SplitSpec, time_block_masks

        spec = SplitSpec(kind="time", num_blocks=args.blocks, val_fraction=0.0, test_fraction=args.test_fraction,
                         gap_s=args.gap_s, seed=args.seed)  # fmt: skip
        masks = time_block_masks(times, spec)
        fit_frames, unseen_frames = masks["train"], masks["test"]
        how = f"{args.blocks - round(args.test_fraction * args.blocks)} of {args.blocks} time blocks"
    else:
        fit_frames = times < 60.0 * args.fit_minutes
        unseen_frames = times >= 60.0 * args.fit_minutes + args.gap_s
        how = f"its first {args.fit_minutes:g} min"
    layer_ckpt = out / f"{new.replace('/', '_')}_layer.ckpt"
    layer_ckpt.unlink(missing_ok=True)
    t0 = time.perf_counter()
    fit = fit_session_layer(new_session, ckpt, layer_ckpt, fit_frames=fit_frames, cache_dir=cache)
    fit_s = time.perf_counter() - t0
    z = embed_session(new_session, layer_ckpt, cache_dir=cache)
    t, y, ends = z["t"], z["label"], z["camera_frame"]
    starts = ends - p["window"] + 1  # the windows lying wholly on fitted / on unseen frames
    fitted = full_windows(fit_frames, times, p["window"], skip_gaps=False)[starts]
    unseen = full_windows(unseen_frames, times, p["window"], skip_gaps=False)[starts]
    raw = raw_windows(p, fit_frames, ends)
    name = str(z["session"])
    seen_labels, new_labels = set(np.unique(y[fitted]).tolist()), set(np.unique(y[unseen]).tolist())
    if new_labels - seen_labels:
        names = [str(z["classes"][k]) for k in sorted(new_labels - seen_labels)]
        print(f"warning: the unseen windows hold class(es) {names} that no fitted window has")

    rows = []
    for part, mask in (("fitted windows", fitted), ("unseen windows", unseen)):
        r = jm.retrieval(z["face"][mask], z["neural"][mask], t[mask], [name] * int(mask.sum()))
        rows.append((part, int(mask.sum()), r["top1"], r["chance_top1"], r["top5"], r["chance_top5"]))
    dec = {
        "neural embedding (fitted layer)": decode(z["neural"], y, fitted, unseen, "cosine"),
        "face embedding": decode(z["face"], y, fitted, unseen, "cosine"),
        "raw activity (window mean)": decode(raw, y, fitted, unseen, "euclidean"),
    }

    report.line(f"\ntrained on {trained} ({args.minutes:g} min each) in {train_s:.0f} s; {new}'s layer fitted on "
          f"{how} ({fit['windows']} windows) in {fit_s:.0f} s, towers frozen")  # fmt: skip
    report.line("\n| new session | windows | retrieval top-1 | chance | retrieval top-5 | chance |")
    report.line("|---|---|---|---|---|---|")
    for part, n, t1, c1, t5, c5 in rows:
        report.line(f"| {new}, {part} | {n} | {t1:.3f} | {c1:.3f} | {t5:.3f} | {c5:.3f} |")
    m = "test/"
    report.line(f"| {trained} (trained), held-out time blocks | | {metrics[m + 'retrieval_top1']:.3f} | "
          f"{metrics[m + 'retrieval_top1_chance']:.3f} | {metrics[m + 'retrieval_top5']:.3f} | "
          f"{metrics[m + 'retrieval_top5_chance']:.3f} |")  # fmt: skip
    report.line(f"\nemotion decoding on {new}'s unseen windows (kNN fitted on its fitted windows):\n")
    report.line("| features | macro-F1 | shuffled-label control |")
    report.line("|---|---|---|")
    for label, (f1, f1_s) in dec.items():
        report.line(f"| {label} | {f1:.3f} | {f1_s:.3f} |")
    report.line(f"| {trained} (trained): neural embedding / raw activity, held-out time blocks | "
          f"{metrics[m + 'knn_f1_embedding']:.3f} / {metrics[m + 'knn_f1_activity']:.3f} | |")  # fmt: skip
    report.write()
    summary = {"rows": rows, "decoding": dec, "fit": fit, "train_s": train_s, "fit_s": fit_s}
    (out / "new_session.json").write_text(json.dumps(summary, indent=2, default=float))


if __name__ == "__main__":
    main()
