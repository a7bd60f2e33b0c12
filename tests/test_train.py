"""Pipeline: train -> test -> evaluate round trip, resume from last.ckpt, the CLI entry points."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from mouseemo import tasks
from mouseemo.errors import ConfigError
from mouseemo.utils.configs import compose
from tests.helpers import check_reported_scores, write_dataset
from tests.test_configs import compose_cfg

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("ds"), num_mice=3, num_frames=160)


def small(dataset, run_dir, *extra):
    model = [] if any(o.startswith("model=") for o in extra) else ["model=cnn"]
    return [
        *model,
        f"data.root={dataset}",
        "data.synthesize=null",
        "data.image_size=[24,32]",
        "data.batch_size=32",
        "data.train_stride=1",
        "data.eval_stride=1",
        "model.net.widths=[8,16]",
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false",
        "++baseline=null",
        f"paths.output_dir={run_dir}",
        *extra,
    ]


def train_small_checkpoints(base, ds):
    """A tiny CNN (crop + resize to 24x32) and a model=hog_proto (native frames) trained on ``ds``
    (48x64 frames) under ``base``: ``{"cnn": ckpt, "hog_proto": ckpt}``."""
    out = {}
    for name, extra in (
        ("cnn", ["model=cnn", "data.crop=[2,1,60,44]", "trainer.max_epochs=1"]),
        ("hog_proto", ["model=hog_proto", "data.image_size=null", "model.hog.pixels_per_cell=[16,16]"]),
    ):
        run = base / name
        over = small(ds, run, *extra)
        if name != "cnn":
            over = [o for o in over if not o.startswith(("model.net", "data.image_size=["))]
        metrics = tasks.train(compose_cfg("train", over, base))
        out[name] = Path(metrics["best_ckpt"] or run / "checkpoints" / "last.ckpt")
    return out


def test_train_evaluate_resume(dataset, tmp_path):
    run = tmp_path / "train"
    metrics = tasks.train(compose_cfg("train", small(dataset, run), tmp_path))
    check_reported_scores(metrics, run)
    for name in (
        "metrics.json",
        "splits.json",
        "test_predictions.csv",
        "confusion_matrix.png",
        "per_class_f1.png",
    ):
        assert (run / name).is_file(), name
    assert (run / "checkpoints" / "last.ckpt").is_file()
    splits = json.loads((run / "splits.json").read_text())
    held_out = set(splits["animals"]["test"]) | set(splits["animals"]["val"])
    assert not held_out & set(splits["animals"]["train"])
    assert {k.split("/")[0] for k in splits["test"]} == set(splits["animals"]["test"])
    rows = (run / "test_predictions.csv").read_text().splitlines()
    assert rows[0].startswith("animal,session,frame,time_s,label,pred,prob_neutral")
    assert len(rows) - 1 == 160  # the whole held-out animal, every frame

    # evaluate the best checkpoint: same test split, same numbers
    ev = tasks.evaluate(
        compose_cfg(
            "evaluate", small(dataset, tmp_path / "eval", f"ckpt_path={metrics['best_ckpt']}"), tmp_path
        )
    )
    assert ev["test/macro_f1"] == pytest.approx(metrics["test/macro_f1"], abs=1e-6)

    # resume from last.ckpt for one more epoch
    last = run / "checkpoints" / "last.ckpt"
    res = tasks.train(
        compose_cfg(
            "train",
            small(dataset, tmp_path / "resume", f"ckpt_path={last}", "trainer.max_epochs=3"),
            tmp_path,
        )
    )
    assert torch.load(tmp_path / "resume" / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 2
    assert "test/macro_f1" in res


def test_learns_label_dependent_frames(dataset, tmp_path):
    """The tiny fixture's labels are visible in the frames: a few epochs must beat chance clearly."""
    over = small(
        dataset,
        tmp_path / "run",
        "trainer.max_epochs=12",
        "data.image_size=[48,64]",
        "model.augment.strength=0",
        "model.optimizer.lr=0.005",
        "callbacks.early_stopping.patience=20",
    )
    metrics = tasks.train(compose_cfg("train", over, tmp_path))
    assert metrics["test/balanced_accuracy"] > 0.5  # chance is 1/7


@pytest.fixture(scope="module")
def four_mice(tmp_path_factory):
    """Four animals: two train (each with its own label shift under the control), one validates, one
    is tested."""
    return write_dataset(tmp_path_factory.mktemp("ds4"), num_mice=4, num_frames=160)


def test_default_model_learns_what_shuffled_labels_cannot(four_mice, tmp_path):
    """The default model (motion_cnn, its own config but for narrow layers and small frames) reads the
    class on a held-out animal; trained on shifted labels (the label control) it cannot.

    Test-animal balanced accuracy, 6 epochs, seeds 0-4 (chance 1/7):
    trained on the labels 0.864 0.818 0.882 0.839 0.914; on shifted labels 0.079 0.000 0.046 0.132 0.171.
    The bars sit about 0.2 inside the worst seed: > 0.6 and > control + 0.4.
    """
    scores = {}
    for control in ("false", "true"):
        over = [
            f"data.root={four_mice}", "data.synthesize=null", "data.image_size=[24,32]",
            "data.batch_size=32", "data.train_stride=1", "data.eval_stride=1", "data.reference_frames=40",
            "model.net.frame_net.widths=[8,16]", "trainer.max_epochs=6", "trainer.enable_progress_bar=false",
            "++baseline=null", "seed=0", f"data.shuffle_train_labels={control}",
            f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path / control}",
        ]  # fmt: skip
        cfg = compose("train", over, hydra_config=True)  # no model=: the default, as `python train.py`
        assert cfg.model.net._target_.endswith("MotionStack") and cfg.model.optimizer.lr == 0.002
        metrics = tasks.train(cfg)
        check_reported_scores(metrics, tmp_path / control)
        scores[control] = metrics["test/balanced_accuracy"]
    assert scores["false"] > 0.6, scores
    assert scores["false"] > scores["true"] + 0.4, scores


def test_ema_callbacks_average_the_weights_in_checkpoints(dataset, tmp_path):
    import pytorch_lightning.callbacks as pl_callbacks

    if not hasattr(pl_callbacks, "EMAWeightAveraging"):
        pytest.skip("callbacks=ema needs pytorch-lightning >= 2.6")
    run = tmp_path / "ema"
    cfg = compose_cfg("train", small(dataset, run, "callbacks=ema", "callbacks.ema.decay=0.9"), tmp_path)
    assert cfg.callbacks.early_stopping is None
    metrics = tasks.train(cfg)
    check_reported_scores(metrics, run)
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    # the saved weights are the average; the raw ones ride along for resuming
    key = "net.head.weight"
    assert key in last["state_dict"] and key in last["current_model_state"]
    assert not torch.equal(last["state_dict"][key], last["current_model_state"][key])
    # a model fitted in one pass (HOG) trains with the same callbacks, without averaging
    hog = [
        o
        for o in small(dataset, tmp_path / "hog", "callbacks=ema", "model=hog_proto")
        if "model.net" not in o
    ]
    hog += ["data.image_size=null", "model.hog.pixels_per_cell=[16,16]"]
    hog = [o for o in hog if o != "data.image_size=[24,32]"]
    hog_metrics = tasks.train(compose_cfg("train", hog, tmp_path))
    check_reported_scores(hog_metrics, tmp_path / "hog")
    # the gratings' orientation is the class: HOG prototypes separate it on the held-out animal
    assert hog_metrics["test/macro_f1"] > 0.9
    from mouseemo.models.callbacks import ema_weight_averaging

    with pytest.raises(ConfigError, match="decay"):
        ema_weight_averaging(decay=1.5)


def test_evaluate_checks_checkpoint(dataset, tmp_path):
    with pytest.raises(ConfigError, match="ckpt_path"):
        tasks.evaluate(compose_cfg("evaluate", small(dataset, tmp_path / "e"), tmp_path))
    run = tmp_path / "t"
    m = tasks.train(compose_cfg("train", small(dataset, run, "trainer.max_epochs=1"), tmp_path))
    wrong = small(dataset, tmp_path / "e2", f"ckpt_path={m['best_ckpt']}", "model.net.widths=[8,16,32]")
    with pytest.raises(ConfigError, match="does not fit the configured model"):
        tasks.evaluate(compose_cfg("evaluate", wrong, tmp_path))


def _cli(args, cwd):
    GlobalHydra.instance().clear()
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_train_py_fast_dev_run(dataset, tmp_path):
    proc = _cli(
        [
            str(REPO / "train.py"),
            *small(dataset, tmp_path / "cli")[:-1],
            "debug=fast",
            f"paths.root_dir={tmp_path}",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = list((tmp_path / "logs" / "train" / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / ".hydra" / "config.yaml").is_file()
    assert (runs[0] / ".hydra" / "overrides.yaml").is_file()


def test_default_model_trains_and_evaluates_through_the_cli(dataset, tmp_path):
    """`python train.py` with no model= trains motion_cnn, and `python evaluate.py ckpt_path=...` with
    no model= takes that checkpoint (both defaults name the same model)."""
    run = tmp_path / "run"
    data = [f"data.root={dataset}", "data.synthesize=null", "data.image_size=[24,32]", "data.batch_size=32"]
    proc = _cli(
        [str(REPO / "train.py"), *data, "model.net.frame_net.widths=[8,16]", "trainer.max_epochs=1",
         "trainer.enable_progress_bar=false", "baseline=null", f"hydra.run.dir={run}"],
        tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = (run / ".hydra" / "config.yaml").read_text()
    assert "MotionStack" in record
    ckpt = sorted((run / "checkpoints").glob("epoch_*.ckpt"))[-1]
    proc = _cli(
        [str(REPO / "evaluate.py"), *data, "model.net.frame_net.widths=[8,16]", f"ckpt_path={ckpt}",
         f"hydra.run.dir={tmp_path / 'eval'}", "trainer.enable_progress_bar=false"],
        tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["ckpt_path"] == str(ckpt)


def test_cli_user_errors_are_one_line(tmp_path):
    proc = _cli(["-m", "mouseemo", "evaluate", f"paths.root_dir={tmp_path}"], tmp_path)
    assert proc.returncode == 2
    assert (
        proc.stderr.strip().splitlines()[-1] == "mouseemo: error: evaluate needs ckpt_path=PATH/TO/model.ckpt"
    )
    assert "Traceback" not in proc.stderr
    proc = _cli(
        [
            str(REPO / "train.py"),
            f"data.root={tmp_path}/nope",
            "data.synthesize=null",
            f"paths.root_dir={tmp_path}",
        ],
        tmp_path,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "dataset root not found" in proc.stderr
