"""The joint encoder's neural embedding vs raw activity vs CEBRA: emotion decoding and wall time.

    python benchmarks/joint.py                        # 2 synthetic animals x 4 minutes, 6 epochs
    python benchmarks/joint.py --mice 3 --minutes 6 --epochs 8 --cebra-iterations 2000
    python benchmarks/joint.py --no-cebra            # our model, its control and the linear baselines

The first table sets our model beside the training-time control (the same model trained with every
session's activity shifted ``--misalign-s`` seconds against the camera, ``data.misalign_s``, and
evaluated on the true alignment: it must fall to chance) and the linear baselines (ridge and
reduced-rank regression from HOG principal components, ridge from the face tower's own features).

Everything runs on the same sessions and the same contiguous time-block splits (the joint
experiment's datamodule): our encoder is trained with ``experiment=joint`` (face <-> neural
contrastive, no labels); CEBRA (Schneider et al. 2023; an installed reference, ``pip install
cebra``, not a mouseemo dependency) is fitted per session on the same training frames, once
self-supervised on time (CEBRA-Time) and once with the face's HOG principal components as continuous
auxiliary variables (CEBRA-Behavior on the face, the closest to our cross-modal setting). Every
embedding is scored the same way: k nearest neighbours fitted on each session's training windows
predict the emotion of its test windows (macro-F1 over all test windows), beside the same decoder
fitted on circularly shifted training labels (the shuffle control). When CEBRA cannot be imported,
its rows say so and the others are still printed.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import _harness
import numpy as np

from mouseemo.models import joint_metrics as jm


def window_rows(dm, stage: str) -> dict[str, np.ndarray]:
    """Session index, last frame and label of every ``stage`` window."""
    ds = dm.datasets[stage]
    last = ds.index[:, 1] + ds.window - 1
    return {"session": ds.index[:, 0], "last": last, "label": ds.labels}


def decode(emb_of, dm, metric: str) -> tuple[float, float]:
    """kNN macro-F1 (and with shifted training labels) of per-window embeddings ``emb_of(k, frames)``."""
    tr, te = window_rows(dm, "train"), window_rows(dm, "test")
    pred, pred_s = np.full(len(te["label"]), -1), np.full(len(te["label"]), -1)
    for k in range(len(dm.sessions)):
        a, b = tr["session"] == k, te["session"] == k
        if a.sum() < 2 or not b.any():
            continue
        x_tr, x_te = emb_of(k, tr["last"][a]), emb_of(k, te["last"][b])
        y_tr = tr["label"][a]
        pred[b] = jm.knn_decode(x_tr, y_tr, x_te, 5, metric=metric)
        pred_s[b] = jm.knn_decode(x_tr, y_tr[jm.half_roll(np.zeros(len(y_tr)))], x_te, 5, metric=metric)
    return jm.macro_f1(te["label"], pred), jm.macro_f1(te["label"], pred_s)


def hog_pcs(dm, k: int, num: int = 16) -> np.ndarray:
    """HOG principal components of every cached frame of session ``k`` (fitted on training frames)."""
    from sklearn.decomposition import PCA

    from mouseemo.ops import hog

    frames = np.load(dm.sessions[k].cache_path, mmap_mode="r")
    feats = np.concatenate(
        [np.asarray(hog(np.asarray(frames[a : a + 512]), pixels_per_cell=(8, 8), chunk_size=64))
         for a in range(0, len(frames), 512)]
    )  # fmt: skip
    train = dm.masks[dm.sessions[k].name]["train"]
    pca = PCA(n_components=min(num, feats.shape[1]), random_state=0).fit(feats[train])
    z = pca.transform(feats)
    return (z / z[train].std(axis=0)).astype(np.float32)


def cebra_embeddings(dm, mode: str, iterations: int, dim: int, seed: int) -> tuple[dict, float]:
    """Per session: a CEBRA model fitted on the training frames, applied to every valid frame."""
    import cebra
    import torch

    torch.manual_seed(seed)
    out, wall = {}, 0.0
    for k, (sf, act) in enumerate(zip(dm.sessions, dm.activity)):
        valid = np.flatnonzero(act.valid)
        train = valid[dm.masks[sf.name]["train"][valid]]
        x = act.neural.astype(np.float32)
        model = cebra.CEBRA(
            model_architecture="offset10-model", batch_size=512, output_dimension=dim, num_hidden_units=32,
            max_iterations=iterations, temperature=1.0, time_offsets=10, device="cpu", verbose=False,
            conditional="time" if mode == "time" else "time_delta",
        )  # fmt: skip
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if mode == "time":
                model.fit(x[train])
            else:
                model.fit(x[train], hog_pcs(dm, k)[train])
            emb = np.zeros((len(x), dim), np.float32)
            emb[valid] = model.transform(x[valid])
        wall += time.perf_counter() - t0
        out[k] = emb
    return out, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="data/benchmarks/joint", help="where the sessions are generated")
    ap.add_argument("--mice", type=int, default=2)
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--size", default="64x80", help="video H x W")
    ap.add_argument("--neurons", type=int, default=120)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--face", default="cnn", choices=("cnn", "hog"), help="our face tower")
    ap.add_argument("--cebra-iterations", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--misalign-s", type=float, default=47.0,
                    help="the control's shift (s); avoid multiples of the stimulus schedule")  # fmt: skip
    ap.add_argument("--no-cebra", action="store_true", help="skip the CEBRA rows")
    ap.add_argument(
        "overrides",
        nargs="*",
        help="extra Hydra overrides for our model, e.g. model.neural_encoder.hidden=128",
    )
    ap.add_argument(
        "--reuse", action="store_true", help="reuse our finished run (its metrics.json) if present"
    )
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads for both methods (1 is fastest on a shared 2-core machine)")  # fmt: skip
    _harness.add_markdown_argument(ap)
    args = ap.parse_args()
    report = _harness.Report(args.markdown, seed=args.seed)
    import torch

    torch.set_num_threads(args.threads)

    from hydra.utils import instantiate

    from mouseemo import tasks
    from mouseemo.data.synthetic import generate_dataset

    h, w = (int(v) for v in args.size.split("x"))
    root = Path(args.data) / f"{args.mice}mice_{args.minutes:g}min_{args.size}_seed{args.seed}"
    if not (root / "manifest.csv").is_file():
        generate_dataset(root, num_mice=args.mice, minutes=args.minutes, seed=args.seed, size=(h, w),
                         num_neurons=args.neurons, workers=1)  # fmt: skip
    tag = "".join("_" + "".join(c if c.isalnum() else "-" for c in o) for o in args.overrides)
    out = root.parent / f"runs_{root.name}_e{args.epochs}{tag}"
    over = ["experiment=joint", f"data.root={root}", "data.synthesize=null", f"trainer.max_epochs={args.epochs}",
            f"model/face_encoder={args.face}", "trainer.enable_progress_bar=false", f"seed={args.seed}",
            *args.overrides]  # fmt: skip
    cfg = _harness.train_config(over, out)
    saved = out / "run" / "metrics.json"
    if args.reuse and saved.is_file():
        import json

        metrics = json.loads(saved.read_text())
        ours_wall = float(metrics["wall_time_s"])
    else:
        t0 = time.perf_counter()
        metrics = tasks.train(cfg)
        ours_wall = time.perf_counter() - t0
    ctrl_out = out.parent / f"{out.name}_misaligned"
    ctrl_saved = ctrl_out / "run" / "metrics.json"
    if args.reuse and ctrl_saved.is_file():
        import json

        ctrl = json.loads(ctrl_saved.read_text())
    else:
        ctrl = tasks.train(_harness.train_config([*over, f"data.misalign_s={args.misalign_s}"], ctrl_out))
    cfg = _harness.train_config(over, out)
    dm = instantiate(cfg.data)  # the same sessions, windows and splits
    dm.prepare_data()
    dm.setup()
    rows = [
        ("mouseemo joint, neural embedding (face-supervised)", metrics["test/knn_f1_embedding"],
         metrics["test/knn_f1_embedding_shuffle"], ours_wall, "train + test, all sessions"),
        ("raw population activity (window mean)", metrics["test/knn_f1_activity"],
         metrics["test/knn_f1_activity_shuffle"], 0.0, "no training"),
    ]  # fmt: skip
    try:
        if args.no_cebra:
            raise ImportError("skipped (--no-cebra)")
        import cebra  # noqa: F401

        have_cebra = True
    except Exception as err:  # noqa: BLE001 - any import failure means "not available"
        have_cebra = False
        rows.append(
            (f"CEBRA: not available ({type(err).__name__}: {err})", float("nan"), float("nan"), 0.0, "")
        )
    if have_cebra:
        for mode, label in (
            ("time", "CEBRA-Time (self-supervised)"),
            ("face", "CEBRA-Behavior, face HOG PCs"),
        ):
            emb, wall = cebra_embeddings(dm, mode, args.cebra_iterations, 16, args.seed)
            f1, f1_s = decode(lambda k, frames, emb=emb: emb[k][frames], dm, "cosine")
            rows.append((label, f1, f1_s, wall, f"{args.cebra_iterations} iterations per session, fit only"))
    n_tr, n_te = len(dm.datasets["train"]), len(dm.datasets["test"])
    report.line(f"\ntorch threads: {torch.get_num_threads()}")
    report.line(f"{args.mice} synthetic animals x {args.minutes:g} min ({args.size}, {args.neurons} ROIs), time-block "
          f"split: {n_tr} training and {n_te} test windows; kNN (k=5) per session, macro-F1 over test windows\n")  # fmt: skip
    report.line(f"| held-out metric | mouseemo joint | misaligned control ({args.misalign_s:g} s) | chance | "
          "ridge, HOG PCs | RRR, HOG PCs | ridge, face-tower features |")  # fmt: skip
    report.line("|---|---|---|---|---|---|---|")
    t = "test/"
    for key, chance, base in (
        ("retrieval_top1", metrics[t + "retrieval_top1_chance"], False),
        ("retrieval_top5", metrics[t + "retrieval_top5_chance"], False),
        ("ve_population", 0.0, True),
        ("knn_f1_embedding", metrics[t + "knn_f1_embedding_shuffle"], False),
    ):
        lin = (f"{metrics[t + 've_population_ridge']:.3f} | {metrics[t + 've_population_rrr']:.3f} | "
               f"{metrics[t + 've_population_tower_ridge']:.3f}") if base else "| |"  # fmt: skip
        report.line(f"| {key} | {metrics[t + key]:.3f} | {ctrl[t + key]:.3f} | {chance:.3f} | {lin} |")
    report.line(
        "(chance: retrieval of random rankings; 0 for variance explained; kNN on shifted training labels)\n"
    )
    report.line("| embedding | emotion macro-F1 | shuffled-label control | wall time (s) | note |")
    report.line("|---|---|---|---|---|")
    for name, f1, f1_s, wall, note in rows:
        report.line(f"| {name} | {f1:.3f} | {f1_s:.3f} | {wall:.0f} | {note} |")
    report.line(
        "\nour held-out metrics, each beside its evaluation-time shuffle (one side rolled by half the "
        "recording at test time: at chance by construction, the metric's floor, not a control):"
    )
    for key in (
        "retrieval_top1",
        "retrieval_top5",
        "ve_population",
        "ve_population_ridge",
        "ve_population_rrr",
    ):
        report.line(f"  {key}: {metrics[f'test/{key}']:.3f} (shuffle {metrics[f'test/{key}_shuffle']:.3f})")
    report.line(f"  retrieval chance: top1 {metrics['test/retrieval_top1_chance']:.3f}, "
          f"top5 {metrics['test/retrieval_top5_chance']:.3f}")  # fmt: skip
    report.write()


if __name__ == "__main__":
    main()
