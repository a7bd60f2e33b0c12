"""`python evaluate.py experiment=benchmark`: HOG vs learned on the same held-out animals, with controls."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra

from mouseemo.errors import ConfigError, DataError
from mouseemo.tasks import run_task
from tests.helpers import ramp_frames, write_dataset, write_session
from tests.test_configs import compose_cfg

REPO = Path(__file__).resolve().parents[1]
TWO = ("neutral", "pain")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("ds"), num_mice=3, num_frames=160)


def tiny(dataset, *extra):
    return [
        "experiment=benchmark",
        f"data.root={dataset}",
        "data.synthesize=null",
        "data.image_size=[48,64]",
        "data.batch_size=32",
        "data.eval_stride=1",
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false",
        "+benchmark.model_overrides.cnn.net.widths=[8,16]",
        "+benchmark.model_overrides.motion_cnn.net.frame_net.widths=[8,16]",
        "data.reference_frames=40",
        "+benchmark.model_overrides.hog_proto.hog.pixels_per_cell=[16,16]",
        "+benchmark.model_overrides.hog_rf.hog.pixels_per_cell=[16,16]",
        "+benchmark.model_overrides.hog_rf.num_trees=20",
        "benchmark.label_sources=[truth]",
        *extra,
    ]


def test_benchmark_end_to_end(dataset, tmp_path):
    GlobalHydra.instance().clear()
    proc = subprocess.run(
        [sys.executable, str(REPO / "evaluate.py"), *tiny(dataset), "data.train_stride=1",
         "trainer.max_epochs=6", f"paths.root_dir={tmp_path}", "benchmark.markdown=results/bm.md"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the results fragment: the command as typed, the seed, the machine, the date; then the tables
    head, _, body = (tmp_path / "results" / "bm.md").read_text().partition("\n\n")
    assert head.startswith("_`python evaluate.py experiment=benchmark ") and "benchmark.markdown=" in head
    assert " · seed " in head and " cores" in head and head.endswith("_")
    assert "| truth | hog_proto_paper |" in body and "#### Per-class test F1" in body
    runs = list((tmp_path / "logs" / "benchmark" / "runs").iterdir())
    assert len(runs) == 1
    run = runs[0]
    with open(run / "benchmark.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["model"] for r in rows] == ["hog_proto", "hog_proto_paper", "hog_rf", "cnn", "motion_cnn"]
    with open(run / "benchmark_jobs.csv", newline="") as fh:
        jobs = {(j["model"], j["shuffle"]): j for j in csv.DictReader(fh)}
    for r in rows:  # one fold: each row is its job's test scores, and its control's
        for col in ("accuracy", "balanced_accuracy", "macro_f1"):
            assert r[col] == jobs[(r["model"], "False")][col], (r["model"], col)
            assert r[f"shuffle_{col}"] == jobs[(r["model"], "True")][col], (r["model"], col)
        assert r["labels"] == "truth" and r["num_folds"] == "1" and r["macro_f1_std"] == ""
    assert {r["test_animals"] for r in rows} == {rows[0]["test_animals"]}  # one held-out animal for all
    assert all(int(r["num_test_frames"]) == 160 for r in rows)
    # the gratings' orientation is the class: HOG separates it on the held-out animal, the shuffled
    # labels of the control cannot be learned
    for hog in rows[:3]:  # hog_proto (own neutral), hog_proto_paper (32-px cells, full frames), hog_rf
        assert float(hog["macro_f1"]) > 0.9 and float(hog["shuffle_macro_f1"]) < 0.5, hog["model"]
    # the learned models read it too, and not from shifted labels. Held-out macro-F1 at seeds 42, 0, 1
    # (6 epochs, every training frame): cnn 0.971 0.805 0.853, its control 0.019-0.041; motion_cnn
    # 0.875 0.639 0.556, its control 0.032-0.043. Bars about 0.15 inside the worst seed.
    learned = {r["model"]: (float(r["macro_f1"]), float(r["shuffle_macro_f1"])) for r in rows[3:]}
    assert learned["cnn"][0] > 0.65 and learned["cnn"][0] > learned["cnn"][1] + 0.5, learned
    assert learned["motion_cnn"][0] > 0.4 and learned["motion_cnn"][0] > learned["motion_cnn"][1] + 0.3, (
        learned
    )
    assert "Per-class test F1" in proc.stdout and "| truth | hog_proto_paper |" in proc.stdout
    for name in ("benchmark.md", "benchmark.png", "benchmark_jobs.csv"):
        assert (run / name).is_file(), name
    for job in (
        "hog_proto",
        "hog_proto_shuffle",
        "hog_proto_paper",
        "hog_rf",
        "hog_rf_shuffle",
        "cnn",
        "cnn_shuffle",
        "motion_cnn",
    ):
        assert (run / job / "metrics.json").is_file(), job
        assert (run / job / "splits.json").is_file(), job
    assert "shuffle_train_labels: true" in (run / "cnn_shuffle" / "config_resolved.yaml").read_text()
    assert "shuffle_train_labels: false" in (run / "cnn" / "config_resolved.yaml").read_text()
    assert "| model | accuracy | balanced_accuracy | macro_f1 | shuffle_macro_f1 |" in proc.stdout
    assert (run / ".hydra" / "config.yaml").is_file()


def test_hog_is_at_chance_where_the_class_is_a_brightness_ramp(tmp_path):
    """Where the class is the sign of a brightness ramp (tests.helpers.ramp_frames), every gradient
    falls into the same unsigned HOG bin with the same weight in either class: the HOG baselines are
    at chance on the held-out animal, the CNN is not.

    Held-out balanced accuracy, 8 epochs, seeds 0-5: hog_proto 0.481-0.556, hog_proto_paper
    0.488-0.525, hog_rf 0.431-0.556 (chance 0.5); cnn 1.000 at every seed. Bars: HOG < 0.65 (0.1 above
    the highest seen), cnn > 0.9 and > every HOG + 0.3.
    """
    root = tmp_path / "ds"
    for k in range(3):
        write_session(root, animal=f"m0{k + 1}", seed=k, num_frames=160, classes=TWO, render=ramp_frames)
    over = tiny(
        root,
        "data.classes=[neutral,pain]",
        "data.train_stride=1",
        "trainer.max_epochs=8",
        "benchmark.models=[hog_proto,hog_proto_paper,hog_rf,cnn]",
        "benchmark.shuffle_control=false",
        "seed=0",
        f"paths.output_dir={tmp_path}/run",
    )
    result = run_task("evaluate", compose_cfg("evaluate", over, tmp_path))
    score = {
        m: result[f"benchmark/{m}/balanced_accuracy"]
        for m in ("hog_proto", "hog_proto_paper", "hog_rf", "cnn")
    }
    hog = {m: v for m, v in score.items() if m != "cnn"}
    assert max(hog.values()) < 0.65, score
    assert score["cnn"] > 0.9 and score["cnn"] > max(hog.values()) + 0.3, score


def test_benchmark_warns_about_a_held_out_animal_without_a_class(tmp_path):
    root = tmp_path / "ds"
    for k in (1, 2):
        write_session(root, animal=f"m0{k}", seed=k, num_frames=160)
    write_session(root, animal="m03", seed=3, num_frames=80)  # 4 blocks of 20: only 4 of the 7 classes
    over = tiny(
        root,
        "data.split.test_animals=[m03]",
        "benchmark.models=[hog_proto]",
        "benchmark.shuffle_control=false",
    )
    over = [o for o in over if "model_overrides.cnn" not in o and "hog_rf" not in o]
    cfg = compose_cfg("evaluate", [*over, f"paths.output_dir={tmp_path}/run"], tmp_path)
    with pytest.warns(UserWarning, match=r"no \['pain', 'passive_fear', 'active_fear'\]"):
        run_task("evaluate", cfg)
    with open(tmp_path / "run" / "benchmark.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["missing_test_classes"] == "pain passive_fear active_fear"
    assert row["f1_pain"] == ""  # undefined, not a silent 0 or 1


def test_benchmark_refuses_unknown_models(dataset, tmp_path):
    cfg = compose_cfg("evaluate", tiny(dataset, "benchmark.models=[hog_proto,vit_huge]"), tmp_path)
    with pytest.raises(ConfigError, match="unknown model 'vit_huge'"):
        run_task("evaluate", cfg)
    cfg = compose_cfg("evaluate", tiny(dataset, "+benchmark.model_overrides.cnnn.net.widths=[4]"), tmp_path)
    with pytest.raises(ConfigError, match=r"names \['cnnn'\], which are not model configs"):
        run_task("evaluate", cfg)


def test_default_train_prints_the_hog_baseline(dataset, tmp_path, capsys):
    over = [
        f"data.root={dataset}", "data.synthesize=null", "data.image_size=[48,64]", "data.batch_size=32",
        "model.net.widths=[8,16]", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
        "baseline=hog_proto", f"paths.output_dir={tmp_path}/run",
    ]  # fmt: skip
    metrics = run_task("train", compose_cfg("train", over, tmp_path))
    out = capsys.readouterr().out
    assert "hog_proto (baseline)" in out and "cnn (this run)" in out
    # the gratings' orientation is the class: HOG with the test animal's own neutral reads it
    assert metrics["baseline/test/macro_f1"] > 0.9
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["baseline/test/macro_f1"] == metrics["baseline/test/macro_f1"]
    base = json.loads((tmp_path / "run" / "baseline" / "metrics.json").read_text())
    assert base["test/macro_f1"] == metrics["baseline/test/macro_f1"]
    # the baseline saw the same split
    split = json.loads((tmp_path / "run" / "splits.json").read_text())
    assert json.loads((tmp_path / "run" / "baseline" / "splits.json").read_text())["test"] == split["test"]


def test_benchmark_over_all_folds(dataset, tmp_path):
    over = tiny(
        dataset, "benchmark.models=[hog_proto]", "benchmark.shuffle_control=false", "benchmark.folds=all"
    )
    over = [o for o in over if "model_overrides.cnn" not in o and "hog_rf" not in o]
    result = run_task(
        "evaluate", compose_cfg("evaluate", [*over, f"paths.output_dir={tmp_path}/run"], tmp_path)
    )
    with open(tmp_path / "run" / "benchmark_jobs.csv", newline="") as fh:
        jobs = list(csv.DictReader(fh))
    assert [j["fold"] for j in jobs] == ["0", "1", "2"]
    assert sorted(j["test_animals"] for j in jobs) == ["m01", "m02", "m03"]  # each animal held out once
    with open(tmp_path / "run" / "benchmark.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["num_folds"] == "3" and row["macro_f1_std"] != ""
    mean = sum(float(j["macro_f1"]) for j in jobs) / 3
    assert float(row["macro_f1"]) == pytest.approx(mean, abs=2e-3)
    assert result["benchmark/hog_proto/macro_f1"] == pytest.approx(mean, abs=1e-6)
    for fold in range(3):
        assert (tmp_path / "run" / f"fold_{fold}" / "hog_proto" / "metrics.json").is_file()


def test_a_single_run_refuses_a_benchmark_config(dataset, tmp_path):
    """tasks.train/evaluate run one model; a benchmark config goes through tasks.run_task."""
    from mouseemo import tasks

    cfg = compose_cfg("evaluate", tiny(dataset, "benchmark.models=[hog_proto]"), tmp_path)
    for run in (tasks.train, tasks.evaluate):
        with pytest.raises(ConfigError, match="is a benchmark"):
            run(cfg)
    with pytest.raises(ConfigError, match="unknown task 'fit'"):
        run_task("fit", cfg)


def test_benchmark_reports_event_labels_beside_truth(tmp_path):
    root = tmp_path / "ds"
    for k in (1, 2, 3):
        path = write_session(root, animal=f"m0{k}", seed=k, num_frames=160)
        # the lab's events: stimulus windows only (neutral blocks are not events), and the
        # active_fear window (frames 120-139) half as long: its last 10 frames are neutral there
        rows = (path / "events.csv").read_text().splitlines()
        keep = [rows[0]] + [r for r in rows[1:] if ",neutral," not in r]
        keep[-1] = keep[-1].replace(",1.000000,", ",0.500000,")
        assert keep[-1].startswith("6.000000,0.500000,active_fear")
        (path / "events.csv").write_text("\n".join(keep) + "\n")
    over = tiny(
        root,
        "benchmark.models=[hog_proto,hog_rf]",
        "benchmark.shuffle_control=false",
        "benchmark.label_sources=[truth,events]",
        f"paths.output_dir={tmp_path}/run",
    )
    over = [o for o in over if "model_overrides.cnn" not in o and "motion_cnn" not in o]
    result = run_task("evaluate", compose_cfg("evaluate", over, tmp_path))
    run = tmp_path / "run"
    with open(run / "benchmark.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["labels"], r["model"]) for r in rows] == [
        ("truth", "hog_proto"), ("truth", "hog_rf"), ("events", "hog_proto"), ("events", "hog_rf"),
    ]  # fmt: skip
    job = run / "labels_events" / "hog_proto"
    text = (job / "config_resolved.yaml").read_text()
    assert "label_source: events" in text and "outside: neutral" in text
    assert "label_source: truth" in (run / "labels_truth" / "hog_proto" / "config_resolved.yaml").read_text()
    # the events job was scored on events labels: frames 130-139 (active_fear in truth) are neutral
    with open(job / "test_predictions.csv", newline="") as fh:
        preds = list(csv.DictReader(fh))
    assert len(preds) == 160
    assert {p["label"] for p in preds if 130 <= int(p["frame"]) < 140} == {"neutral"}
    with open(run / "labels_truth" / "hog_proto" / "test_predictions.csv", newline="") as fh:
        truth = [p for p in csv.DictReader(fh) if 130 <= int(p["frame"]) < 140]
    assert {p["label"] for p in truth} == {"active_fear"}
    assert result["benchmark/events/hog_proto/macro_f1"] == pytest.approx(
        float(rows[2]["macro_f1"]), abs=1e-3
    )
    md = (run / "benchmark.md").read_text()
    assert "| labels | model |" in md and "| events | hog_rf |" in md
    # the gratings' orientation is the class: HOG still reads it with event labels
    assert float(rows[2]["macro_f1"]) > 0.7


def test_benchmark_refuses_jobs_scored_on_different_labels(dataset, tmp_path, monkeypatch):
    from mouseemo import tasks

    calls = []

    def fake_train(cfg):
        out = Path(cfg.paths.output_dir)
        out.mkdir(parents=True)
        (out / "splits.json").write_text(json.dumps({"test": {"m01/s01": [[0, 2]]}}))
        label = "pain" if calls else "neutral"  # the second job sees other test labels
        calls.append(cfg.model)
        (out / "test_predictions.csv").write_text(
            f"animal,session,frame,time_s,label,pred\nm01,s01,0,0.0,{label},neutral\n"
        )
        return {"test/macro_f1": 1.0, "test/confusion_matrix": [[1]]}

    monkeypatch.setattr(tasks, "train", fake_train)
    cfg = compose_cfg(
        "evaluate",
        ["experiment=benchmark", "benchmark.models=[hog_proto,hog_rf]", "benchmark.shuffle_control=false",
         "benchmark.label_sources=[truth]", f"paths.output_dir={tmp_path}/run",
         f"data.root={dataset}", "data.synthesize=null"],
        tmp_path,
    )  # fmt: skip
    with pytest.raises(DataError, match="tested on different frames or labels"):
        run_task("evaluate", cfg)
    assert len(calls) == 2
    with pytest.raises(ConfigError, match="label_sources must list distinct entries"):
        run_task(
            "evaluate",
            compose_cfg(
                "evaluate", ["experiment=benchmark", "benchmark.label_sources=[truth,frames]"], tmp_path
            ),
        )


def test_a_fold_without_a_class_is_named_or_refused():
    from mouseemo.experiments.benchmark import _check_fold_classes

    job = {"missing": ["pain"], "shuffle": False, "fold": 2, "test_animals": ["m03"], "labels": "events"}
    with pytest.warns(
        UserWarning, match=r"fold 2, held-out animal\(s\) m03 \(events labels\): no test frames of \['pain'\]"
    ):
        _check_fold_classes(job, ["neutral", "pain"], "warn")
    with pytest.raises(DataError, match="fold 2.*benchmark.missing_classes=error"):
        _check_fold_classes(job, ["neutral", "pain"], "error")


def test_per_class_mean_sd_tables():
    from mouseemo.experiments.report import class_table, markdown_table, mean_sd, summarize

    classes = ["neutral", "pain"]

    def job(fold, f1n, f1p, missing=()):
        m = {"test/accuracy": 0.8, "test/balanced_accuracy": 0.7, "test/macro_f1": (f1n + f1p) / 2,
             "test/f1_neutral": f1n, "test/f1_pain": f1p, "wall_time_s": 1.0}  # fmt: skip
        return {"model": "hog_proto", "labels": "truth", "shuffle": False, "fold": fold, "metrics": m,
                "test_animals": [f"m{fold}"], "missing": list(missing), "num_test_frames": 10}  # fmt: skip

    jobs = [job(0, 0.9, 0.5), job(1, 0.7, 0.7), job(2, 0.8, 0.0, missing=["pain"])]
    with pytest.warns(UserWarning, match=r"contain no \['pain'\]"):
        (row,) = summarize(jobs, ["hog_proto"], classes, labels="truth")
    assert row["f1_neutral"] == pytest.approx(0.8) and row["f1_neutral_std"] == pytest.approx(0.1)
    assert row["f1_pain"] == pytest.approx(0.6) and row["f1_pain_folds"] == 2  # fold 2 has no pain
    assert row["macro_f1"] == pytest.approx((0.7 + 0.7 + 0.4) / 3)
    assert mean_sd(0.81234, 0.0345) == "0.812 ± 0.035"
    assert mean_sd(0.5, float("nan")) == "0.500" and mean_sd(float("nan"), 0.1) == ""
    table = class_table([row], classes)
    assert table.splitlines()[0] == "| labels | model | neutral | pain |"
    assert table.splitlines()[2] == "| truth | hog_proto | 0.800 ± 0.100 | 0.600 ± 0.141 (2/3 folds) |"
    assert "| truth | hog_proto | 0.800 ± 0.000 | 0.700 ± 0.000 | 0.600 ± 0.173 |" in markdown_table([row])


def test_truth_labels_need_truth_files(tmp_path):
    root = tmp_path / "ds"
    for k in (1, 2):
        (write_session(root, animal=f"m0{k}", seed=k, num_frames=40) / "truth" / "frames.csv").unlink()
    over = [
        "experiment=benchmark",
        f"data.root={root}",
        "data.synthesize=null",
        "benchmark.label_sources=[truth,events]",
    ]
    with pytest.raises(ConfigError, match=r"no truth/frames.csv .*benchmark.label_sources=\[events\]"):
        run_task("evaluate", compose_cfg("evaluate", over, tmp_path))
