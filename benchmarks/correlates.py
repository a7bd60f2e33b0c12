"""Correlates against the synthetic ground truth: precision / recall of selective neurons, agreement of
the preferred emotion, false positives among untuned cells, and wall time.

    python benchmarks/correlates.py                      # 3 seeds x (3 and 6 minutes), 72x96 video
    python benchmarks/correlates.py --seeds 0 --minutes 6 --size 120x160 --pixels-per-cell 16

Sessions are generated once under ``--data`` (reused on later runs). Each session is analysed with
the unmixed expression intensities (the default), the paper's Pearson similarities, and the
intensities with the common "minimum shift" of 10 s (whose p-values are too small: compare the
untuned cells flagged).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mouseemo.analysis.correlates import compare_with_truth, read_truth_neurons  # noqa: E402
from mouseemo.analysis.correlates_run import analyse_session  # noqa: E402
from mouseemo.data.session import Session  # noqa: E402
from mouseemo.data.synthetic import generate_dataset  # noqa: E402
from mouseemo.inference.prototypes import session_prototypes  # noqa: E402
from mouseemo.inference.traces import traces_from_prototypes  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="data/benchmarks/correlates", help="where sessions are generated")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--minutes", type=float, nargs="+", default=[3.0, 6.0])
    ap.add_argument("--size", default="72x96", help="video H x W")
    ap.add_argument("--pixels-per-cell", type=int, default=8)
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    rows = []
    for minutes in args.minutes:
        for seed in args.seeds:
            root = Path(args.data) / f"{args.size}_{minutes:g}min_seed{seed}"
            t0 = time.perf_counter()
            if not (root / "m01" / "s01" / "session.json").is_file():
                generate_dataset(root, num_mice=1, minutes=minutes, seed=seed, size=(h, w), workers=1)
            gen = time.perf_counter() - t0
            session = Session.open(root / "m01" / "s01")
            truth = read_truth_neurons(session.path / "truth" / "neurons.csv")
            t0 = time.perf_counter()
            protos = session_prototypes(session, hog={"pixels_per_cell": args.pixels_per_cell})
            t_protos = time.perf_counter() - t0
            for label, trace, min_shift in (
                ("intensity", "intensity", 0.0),
                ("similarity", "similarity", 0.0),
                ("intensity, min shift 10 s", "intensity", 10.0),
            ):
                t0 = time.perf_counter()
                face = traces_from_prototypes(session, protos, trace)
                t_face = time.perf_counter() - t0
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    run = analyse_session(session.path, face, min_shift_s=min_shift)
                t_stats = time.perf_counter() - t0
                c = compare_with_truth(run.result, truth)
                pc = c["per_truth_class"]
                rows.append(
                    {
                        "session": f"{minutes:g} min, seed {seed}",
                        "trace": label,
                        "neurons": c["num_neurons"],
                        "significant": c["num_significant"],
                        "precision": c["precision"],
                        "recall": c["recall"],
                        "agreement": c["agreement"],
                        "untuned": f"{pc['none']['significant']}/{pc['none']['neurons']}",
                        "movement": f"{pc['movement']['significant']}/{pc['movement']['neurons']}",
                        "shifts": run.summary["num_shifts"],
                        "face_s": t_face + t_protos,
                        "stats_s": t_stats,
                        "synth_s": gen,
                    }
                )
                r = rows[-1]
                print(
                    f"  {r['session']:16s} {r['trace']:26s} P={r['precision']:.2f} R={r['recall']:.2f} "
                    f"A={r['agreement']:.2f} ({r['stats_s']:.1f} s)",
                    file=sys.stderr,
                )
    header = (
        "| session | trace | neurons | significant | precision | recall | agreement | untuned flagged "
        "| movement flagged | shifts | face traces (s) | statistics (s) |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for r in rows:
        print(
            f"| {r['session']} | {r['trace']} | {r['neurons']} | {r['significant']} | {r['precision']:.2f} "
            f"| {r['recall']:.2f} | {r['agreement']:.2f} | {r['untuned']} | {r['movement']} | {r['shifts']} "
            f"| {r['face_s']:.1f} | {r['stats_s']:.1f} |"
        )
    print(
        "\nprecision: truly selective (single-emotion or mixed) among significant; recall: significant "
        "among selective; agreement: preferred emotion = the neuron's own (one of a mixed neuron's two). "
        "Face traces include building the session's prototypes."
    )


if __name__ == "__main__":
    main()
