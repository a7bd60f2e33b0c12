"""The tail-shock benchmark on a small slice of the real mice: one fold, the face crop.

It runs the recipe's pieces end to end on the shared development mice (built with the face crop, in
the seeded random trial order) and checks what the real-mice page claims of them: the label control
that breaks the labels' timing sits near chance, the phase of the trial says nothing at the stimulus
phase of every trial, and the learned log-free model beats the pixel change it is compared with.
"""

import csv

import pytest

from mouseemo.data.tail_shock import build_tail_shock_sessions

FACE = (8, 32, 60, 52)  # the DER layout's head: eye, ear and snout


@pytest.fixture(scope="module")
def face_sessions(real_data_dir, tmp_path_factory):
    src = real_data_dir / "der_tail_shock"
    if not src.is_dir():
        pytest.skip("der_tail_shock clips are absent")
    out = tmp_path_factory.mktemp("der_face")
    build_tail_shock_sessions(src, out, crop=FACE)
    return out


def test_one_fold_on_the_face(face_sessions, tmp_path):
    from mouseemo.hydra_entry import run

    models = ["timing_phase", "pixel_change_session", "cnn"]
    code = run(
        "evaluate",
        [
            "experiment=tail_shock", f"data.root={face_sessions}", f"paths.log_dir={tmp_path / 'logs'}",
            f"benchmark.models=[{','.join(models)}]", "benchmark.folds=[ECO_5_0RR_F]", "logger=none",
            "benchmark.tracks={stimulus_locked:[timing_phase],log_free:[pixel_change_session,cnn]}",
            "benchmark.control_draws=1",  # the recipe's training, one draw of the permutation
        ],
    )  # fmt: skip
    assert code == 0
    (csv_path,) = (tmp_path / "logs").rglob("benchmark.csv")
    rows = {r["model"]: r for r in csv.DictReader(csv_path.open())}
    f1 = {m: float(rows[m]["macro_f1"]) for m in models}
    window = {m: float(rows[m]["window_macro_f1"]) for m in models}
    # the circular shift breaks the labels' link to the trial: near chance (all-neutral gives 0.45)
    assert float(rows["cnn"]["shuffle_macro_f1"]) < 0.6
    # the phase alone: good on all frames, chance at the stimulus phase of every trial
    assert f1["timing_phase"] > 0.8 and window["timing_phase"] < 0.45
    # the log-free frame model tells shock trials from sham ones at the same phase, and beats the
    # pixel change from the session's median frame on this mouse
    assert window["cnn"] > 0.7
    assert f1["cnn"] > f1["pixel_change_session"] + 0.05
