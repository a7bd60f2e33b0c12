"""`python evaluate.py experiment=benchmark`: HOG vs learned on the same held-out animals, with controls."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra

from mouseemo.comparison import run_task
from mouseemo.errors import ConfigError
from tests.helpers import write_dataset, write_session
from tests.test_configs import compose_cfg

REPO = Path(__file__).resolve().parents[1]


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
        [sys.executable, str(REPO / "evaluate.py"), *tiny(dataset), f"paths.root_dir={tmp_path}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = list((tmp_path / "logs" / "benchmark" / "runs").iterdir())
    assert len(runs) == 1
    run = runs[0]
    with open(run / "benchmark.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["model"] for r in rows] == ["hog_proto", "hog_rf", "cnn", "motion_cnn"]
    for col in ("accuracy", "balanced_accuracy", "macro_f1", "shuffle_macro_f1", "shuffle_accuracy"):
        assert all(0.0 <= float(r[col]) <= 1.0 for r in rows), col
    assert {r["test_animals"] for r in rows} == {rows[0]["test_animals"]}  # one held-out animal for all
    assert all(int(r["num_test_frames"]) == 160 for r in rows)
    # the gratings' orientation is the class: HOG separates it on the held-out animal, the shuffled
    # labels of the control cannot be learned
    hog = rows[0]
    assert float(hog["macro_f1"]) > 0.9 and float(hog["shuffle_macro_f1"]) < 0.5
    for name in ("benchmark.md", "benchmark.png", "benchmark_jobs.csv"):
        assert (run / name).is_file(), name
    for job in (
        "hog_proto",
        "hog_proto_shuffle",
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
    assert 0 <= metrics["baseline/test/macro_f1"] <= 1
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
    result = run_task("evaluate", compose_cfg("evaluate", [*over, f"paths.output_dir={tmp_path}/run"], tmp_path))
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
