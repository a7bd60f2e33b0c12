"""The collapse flag: a row that predicts one class for >= 95% of its test frames is marked."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from mouseemo.errors import ConfigError, DataError
from mouseemo.experiments.collapse import collapse_of, collapse_of_file, folds_note
from mouseemo.experiments.report import markdown_table, summarize

CLASSES = ["neutral", "pain"]


def test_collapse_of_constructed_predictions():
    one = collapse_of(np.array(["neutral"] * 96 + ["pain"] * 4))
    assert one.collapsed and one.dominant == "neutral" and one.share == pytest.approx(0.96)
    assert one.note() == "one class: neutral (96%)"
    mixed = collapse_of(np.array(["neutral"] * 94 + ["pain"] * 6))
    assert not mixed.collapsed and mixed.dominant == "neutral" and mixed.share == pytest.approx(0.94)
    assert mixed.note() == ""
    exact = collapse_of([0] * 19 + [3])  # exactly 95%: collapsed; indices work as well as names
    assert exact.collapsed and exact.dominant == 0
    assert collapse_of(np.array([4, 4, 4], dtype=np.int64)).dominant == 4  # numpy scalars unwrapped
    empty = collapse_of([])
    assert not empty.collapsed and empty.dominant is None and empty.share == 0.0
    with pytest.raises(ConfigError, match="`threshold`"):
        collapse_of(["pain"], threshold=0.0)


def test_collapse_of_prediction_rows(tmp_path):
    path = tmp_path / "test_predictions.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["animal", "session", "frame", "time_s", "label", "pred", "prob_neutral"])
        for i in range(40):
            w.writerow(["m01", "s01", i, i / 20, "pain" if i % 2 else "neutral", "neutral", "0.9"])
    verdict = collapse_of_file(path)
    assert verdict.collapsed and verdict.dominant == "neutral" and verdict.share == 1.0
    assert collapse_of_file(tmp_path / "absent.csv") is None
    with pytest.raises(DataError, match="`pred`"):
        collapse_of([{"label": "pain"}])


def _job(model, fold, preds):
    m = {"test/accuracy": 0.5, "test/balanced_accuracy": 0.5, "test/macro_f1": 0.4,
         "test/f1_neutral": 0.6, "test/f1_pain": 0.2, "wall_time_s": 1.0}  # fmt: skip
    return {"model": model, "labels": "", "shuffle": False, "fold": fold, "metrics": m,
            "test_animals": [f"m{fold}"], "missing": [], "num_test_frames": len(preds),
            "collapse": collapse_of(preds)}  # fmt: skip


def test_report_marks_a_collapsed_row_only():
    jobs = [
        _job("hog_proto", 0, ["neutral"] * 99 + ["pain"]),
        _job("hog_proto", 1, ["neutral"] * 100),
        _job("cnn", 0, ["neutral"] * 60 + ["pain"] * 40),
        _job("cnn", 1, ["neutral"] * 50 + ["pain"] * 50),
    ]
    rows = summarize(jobs, ["hog_proto", "cnn"], CLASSES)
    assert rows[0]["collapsed"] == "one class: neutral in 2/2 folds"
    assert rows[1]["collapsed"] == ""
    table = markdown_table(rows).splitlines()
    assert table[2].startswith("| hog_proto (one class: neutral in 2/2 folds) | 0.500")
    assert table[3].startswith("| cnn | 0.500")
    (single,) = summarize(jobs[:1], ["hog_proto"], CLASSES)
    assert "| hog_proto (one class: neutral (99%)) |" in markdown_table([single])


def test_folds_note():
    c, ok = collapse_of(["pain"] * 20), collapse_of(["pain", "neutral"])
    assert folds_note([ok, None]) == "" and folds_note([]) == ""
    assert folds_note([c, ok, None]) == "one class: pain in 1/3 folds"


def test_the_train_printout_flags_a_collapsed_model(capsys):
    from types import SimpleNamespace

    from mouseemo.tasks import _collapse_note, _print_summary

    def model(preds):
        rows = [("m01", "s01", i, i / 20, 0, p, 0.5, 0.5) for i, p in enumerate(preds)]
        return SimpleNamespace(classes=CLASSES, test_rows=rows)

    metrics = {"test/accuracy": 0.9, "test/balanced_accuracy": 0.5, "test/macro_f1": 0.47}
    _print_summary(metrics, _collapse_note(model([0] * 40)))
    assert (
        "balanced_accuracy=0.500  macro_f1=0.470  [collapsed: one class: neutral (100%)]"
        in capsys.readouterr().out
    )
    _print_summary(metrics, _collapse_note(model([0, 1] * 20)))
    out = capsys.readouterr().out
    assert "macro_f1=0.470\n" in out and "collapsed" not in out
    assert _collapse_note(SimpleNamespace(classes=CLASSES, test_rows=[])) == ""
