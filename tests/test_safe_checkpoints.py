"""Checkpoints and the configs recorded in them are loaded as data: nothing in a file runs code."""

import pathlib
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from mouseemo import tasks
from mouseemo.errors import ConfigError, DataError, MouseemoError
from mouseemo.models.checkpoint import RECORD_KEY, load_model, read_checkpoint
from mouseemo.models.hog_proto_module import HogRFLitModule
from mouseemo.models.safe_config import check_targets, is_allowed_target
from tests.helpers import write_dataset
from tests.test_configs import compose_cfg
from tests.test_train import small

REPO = Path(__file__).resolve().parents[1]


class WritesMarker:
    """Unpickling this object writes ``marker``: the code a malicious checkpoint would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.write_text, (self.marker, "pwned"))


def crafted(path: Path, marker: Path, fmt: str = "torch") -> Path:
    payload = {"state_dict": {}, "epoch": 0, "evil": WritesMarker(marker)}
    if fmt == "torch":
        torch.save(payload, path)
    else:  # a plain pickle, the legacy torch format
        path.write_bytes(pickle.dumps(payload, protocol=2))
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("ds"), num_mice=3, num_frames=80)


def test_the_crafted_payload_is_real(tmp_path):
    """Guard: loading the crafted file the old way (weights_only=False) does write the marker."""
    marker = tmp_path / "marker.txt"
    torch.load(crafted(tmp_path / "evil.ckpt", marker), weights_only=False)
    assert marker.read_text() == "pwned"


@pytest.mark.parametrize("fmt", ["torch", "pickle"])
def test_pickled_objects_are_refused_by_the_reader_and_load_model(tmp_path, fmt):
    marker = tmp_path / "marker.txt"
    path = crafted(tmp_path / "evil.ckpt", marker, fmt)
    for fn in (read_checkpoint, load_model):
        with pytest.raises(DataError) as info:
            fn(path)
        msg = str(info.value)
        assert str(path) in msg and "\n" not in msg
        assert "checkpoints are read as data only" in msg
    assert not marker.exists()


def test_the_refusal_names_the_type(tmp_path):
    marker = tmp_path / "marker.txt"
    path = crafted(tmp_path / "evil.ckpt", marker)
    with pytest.raises(DataError, match=r"contains a pickled object of type \S*(pathlib|getattr)"):
        read_checkpoint(path)


def test_evaluate_and_resume_refuse_a_crafted_checkpoint(dataset, tmp_path):
    marker = tmp_path / "marker.txt"
    path = crafted(tmp_path / "evil.ckpt", marker)
    ev = compose_cfg("evaluate", small(dataset, tmp_path / "ev", f"ckpt_path={path}"), tmp_path)
    with pytest.raises(MouseemoError, match="evil.ckpt"):
        tasks.evaluate(ev)
    tr = compose_cfg("train", small(dataset, tmp_path / "tr", f"ckpt_path={path}"), tmp_path)
    with pytest.raises(MouseemoError, match="evil.ckpt"):
        tasks.train(tr)
    assert not marker.exists()
    assert not (tmp_path / "tr" / "checkpoints").exists()


def test_cli_evaluate_refuses_a_crafted_checkpoint_in_one_line(tmp_path):
    marker = tmp_path / "marker.txt"
    path = crafted(tmp_path / "evil.ckpt", marker)
    GlobalHydra.instance().clear()
    proc = subprocess.run(
        [sys.executable, "-m", "mouseemo", "evaluate", f"ckpt_path={path}", f"paths.root_dir={tmp_path}",
         "data.synthesize=null", f"data.root={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("mouseemo: error: cannot load checkpoint") and str(path) in last
    assert "Traceback" not in proc.stderr
    assert not marker.exists()


# -- recorded model configs: only mouseemo's models are rebuilt ---------------------------------------
def _record_ckpt(path: Path, model: dict) -> Path:
    torch.save({"state_dict": {}, RECORD_KEY: {"version": "0", "model": model, "data": {}}}, path)
    return path


CNN = {
    "_target_": "mouseemo.models.classifier_module.ClassifierLitModule",
    "net": {"_target_": "mouseemo.models.components.cnn.SmallCNN", "in_channels": 1, "num_classes": 7},
    "optimizer": {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 0.001},
    "scheduler": {"_target_": "torch.optim.lr_scheduler.CosineAnnealingLR", "_partial_": True, "T_max": 2},
}


def test_a_recorded_target_outside_mouseemo_models_is_refused(tmp_path):
    victim = tmp_path / "written.txt"
    bad = {"_target_": "mouseemo.utils.io.write_text_atomic", "path": str(victim), "text": "x"}
    path = _record_ckpt(tmp_path / "target.ckpt", bad)
    with pytest.raises(DataError) as info:
        load_model(path)
    msg = str(info.value)
    assert str(path) in msg and "'mouseemo.utils.io.write_text_atomic'" in msg
    assert "only mouseemo models" in msg
    assert not victim.exists()


@pytest.mark.parametrize("key", ["net", "optimizer", "scheduler"])
def test_a_nested_bad_target_is_refused(tmp_path, key):
    victim = tmp_path / "written.txt"
    model = {k: dict(v) if isinstance(v, dict) else v for k, v in CNN.items()}
    model[key] = {"_target_": "mouseemo.utils.io.write_text_atomic", "path": str(victim), "text": "x"}
    if key != "net":
        model[key]["_partial_"] = True
    path = _record_ckpt(tmp_path / "nested.ckpt", model)
    with pytest.raises(DataError, match=rf"refusing to rebuild model target .*write_text_atomic.* at {key}"):
        load_model(path)
    assert not victim.exists()


def test_target_allow_list():
    for ok in (
        CNN["_target_"],
        CNN["net"]["_target_"],
        "torch.optim.AdamW",
        "torch.optim.lr_scheduler.CosineAnnealingLR",
        "torchvision.models.resnet18",
        "mouseemo.models.hog_proto_module.HogRFLitModule",
        "mouseemo.models.joint_module.JointLitModule",
    ):
        assert is_allowed_target(ok), ok
    for bad in (
        "os.system",
        "builtins.eval",
        "mouseemo.utils.io.write_text_atomic",
        "mouseemo.models.checkpoint.torch.load",  # an attribute chain out of mouseemo.models
        "mouseemo.models.checkpoint.load_model",  # a function, not a model
        "mouseemo.models.prototypes_io.Prototypes.save",
        "torch.optim.Optimizer.zero_grad",
        "torchvision.models.resnet.torch.load",
        "torch.load",
        "mouseemo.models.nope.Nope",
        42,
    ):
        assert not is_allowed_target(bad), bad
    check_targets([CNN, {"a": [CNN]}], "x.ckpt")  # nested lists and dicts of good targets pass
    with pytest.raises(DataError, match=r"x\.ckpt: .*'os\.system' at 1\.a\.0"):
        check_targets([CNN, {"a": [{"_target_": "os.system"}]}], "x.ckpt")


# -- hog_rf: the forest travels as arrays ------------------------------------------------------------
def _fitted_forest() -> HogRFLitModule:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 30)
    feats = rng.normal(size=(len(labels), 40)).astype(np.float32) + labels[:, None] * 0.3
    module = HogRFLitModule(num_components=8, num_trees=12, num_jobs=1, seed=3, neutral="training")
    module.frame_size = (48, 64)
    module._fit({"features": feats, "label": labels})
    return module


def test_hog_rf_round_trip_predicts_identically_without_pickle(tmp_path):
    module = _fitted_forest()
    ckpt: dict = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(ckpt)
    path = tmp_path / "rf.ckpt"
    torch.save(ckpt, path)
    raw = path.read_bytes()
    assert b"sklearn.ensemble" not in raw and b"sklearn.pipeline" not in raw  # no pickled estimators
    loaded = read_checkpoint(path)  # weights_only=True
    assert not isinstance(loaded["hog_rf"]["pipeline"], bytes)
    other = HogRFLitModule(num_components=8, num_trees=12, num_jobs=1, seed=3, neutral="training")
    other.on_load_checkpoint(loaded)
    assert other.frame_size == (48, 64)
    feats = torch.from_numpy(np.random.default_rng(1).normal(size=(64, 40)).astype(np.float32))
    a, pa = module._scores(feats)
    b, pb = other._scores(feats)
    assert torch.equal(a, b) and torch.equal(pa, pb)
    x = feats.numpy()
    assert np.array_equal(module.pipeline.predict_proba(x), other.pipeline.predict_proba(x))
    assert np.array_equal(module.pipeline[0].transform(x), other.pipeline[0].transform(x))


def test_hog_rf_refuses_a_pickled_forest_and_tampered_trees(tmp_path):
    marker = tmp_path / "marker.txt"
    module = HogRFLitModule(num_jobs=1)
    with pytest.raises(DataError, match="pickle.*fit the model again"):
        module.on_load_checkpoint(
            {"hog_rf": {"pipeline": pickle.dumps(WritesMarker(marker)), "frame_size": None}}
        )
    assert not marker.exists()
    fitted = _fitted_forest()
    ckpt: dict = {}
    fitted.on_save_checkpoint(ckpt)
    tree = ckpt["hog_rf"]["pipeline"]["state"]["steps"][1][1]["state"]["estimators_"][0]["state"]["tree_"]
    tree["state"]["nodes"]["__structured__"]["left_child"][0] = 10**6  # out of bounds
    with pytest.raises(DataError, match="out-of-range"):
        HogRFLitModule(num_jobs=1).on_load_checkpoint(ckpt)
    ckpt["hog_rf"]["pipeline"]["state"]["steps"][0] = ("pca", {"__sklearn__": "Popen", "state": {}})
    with pytest.raises(DataError, match="refusing to rebuild 'Popen'"):
        HogRFLitModule(num_jobs=1).on_load_checkpoint(ckpt)


# -- mouseemo's own checkpoints still load, score and resume -----------------------------------------
def test_real_checkpoints_load_as_data_evaluate_and_resume(dataset, tmp_path):
    run = tmp_path / "cnn"
    metrics = tasks.train(compose_cfg("train", small(dataset, run, "trainer.max_epochs=1"), tmp_path))
    last = run / "checkpoints" / "last.ckpt"
    for path in (metrics["best_ckpt"], last):
        torch.load(path, map_location="cpu", weights_only=True)  # plain data, no allow-list
    loaded = load_model(metrics["best_ckpt"])
    assert loaded.module.hparams["classes"] == loaded.classes
    ev = tasks.evaluate(
        compose_cfg(
            "evaluate", small(dataset, tmp_path / "ev", f"ckpt_path={metrics['best_ckpt']}"), tmp_path
        )
    )
    assert ev["test/macro_f1"] == pytest.approx(metrics["test/macro_f1"], abs=1e-6)
    over = small(dataset, tmp_path / "resume", f"ckpt_path={last}", "trainer.max_epochs=2", "test=false")
    tasks.train(compose_cfg("train", over, tmp_path))
    assert read_checkpoint(tmp_path / "resume" / "checkpoints" / "last.ckpt")["epoch"] == 1


def test_real_hog_rf_checkpoint_evaluates_as_trained(dataset, tmp_path):
    run = tmp_path / "rf"
    over = [
        o for o in small(dataset, run, "model=hog_rf") if not o.startswith(("model.net", "data.image_size"))
    ]
    over += [
        "data.image_size=[48,64]",
        "model.hog.pixels_per_cell=[16,16]",
        "model.num_trees=10",
        "model.num_jobs=1",
    ]
    metrics = tasks.train(compose_cfg("train", over, tmp_path))
    ckpt = read_checkpoint(metrics["best_ckpt"])
    assert ckpt["hog_rf"]["format"].startswith("mouseemo-sklearn-plain")
    loaded = load_model(metrics["best_ckpt"])
    assert loaded.module.is_fitted
    ev_over = [o for o in over if not o.startswith("paths.output_dir")]
    ev_over += [f"paths.output_dir={tmp_path / 'ev'}", f"ckpt_path={metrics['best_ckpt']}"]
    ev = tasks.evaluate(compose_cfg("evaluate", ev_over, tmp_path))
    assert ev["test/macro_f1"] == pytest.approx(metrics["test/macro_f1"], abs=1e-6)
    a = (run / "test_predictions.csv").read_text()
    b = (tmp_path / "ev" / "test_predictions.csv").read_text()
    assert a == b


# -- Hydra values of the wrong type ------------------------------------------------------------------
def test_a_value_of_the_wrong_type_names_the_key(dataset, tmp_path):
    cfg = compose_cfg("train", small(dataset, tmp_path / "r", "data.batch_size=abc"), tmp_path)
    with pytest.raises(ConfigError, match=r"^data\.batch_size: expected an integer, got 'abc'$"):
        tasks.train(cfg)
    for override, message in (
        ("data.batch_size=1.5", r"data\.batch_size: expected an integer, got 1\.5"),
        ("data.pin_memory=1", r"data\.pin_memory: expected true or false, got 1"),
        ("trainer.max_epochs=many", r"trainer\.max_epochs: expected an integer or null, got 'many'"),
        ("model.net.dropout=high", r"model\.net\.dropout: expected a number, got 'high'"),
        ("callbacks.early_stopping.patience=x", r"callbacks\.early_stopping\.patience: expected an integer"),
    ):
        cfg = compose_cfg("train", small(dataset, tmp_path / "r", override), tmp_path)
        with pytest.raises(ConfigError, match=message):
            tasks.train(cfg)
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_cli_wrong_type_is_one_line(tmp_path):
    GlobalHydra.instance().clear()
    proc = subprocess.run(
        [sys.executable, "-m", "mouseemo", "train", "data.batch_size=abc", f"paths.root_dir={tmp_path}",
         "data.synthesize=null", f"data.root={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert (
        proc.stderr.strip().splitlines()[-1]
        == "mouseemo: error: data.batch_size: expected an integer, got 'abc'"
    )
    assert "Traceback" not in proc.stderr
