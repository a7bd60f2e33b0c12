"""The joint face <-> neural encoder: towers, loss and metrics; the face+neural windows; a seeded
training run that must beat every shuffle control; its checkpoint; ``mouseemo embed`` and its errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mouseemo import tasks
from mouseemo.cli import main
from mouseemo.errors import ConfigError
from mouseemo.models import joint_metrics as jm
from mouseemo.models.components.cnn import SmallCNN
from mouseemo.models.components.joint import (
    FrameFaceEncoder,
    HogFaceEncoder,
    NeuralEncoder,
    SessionLayers,
    info_nce,
)
from tests.helpers import synthetic_world
from tests.test_configs import compose_cfg

# --------------------------------------------------------------------------------------------------
# Towers and loss
# --------------------------------------------------------------------------------------------------


def test_face_encoders_shapes_and_gradients():
    frames = torch.randint(0, 256, (3, 5, 1, 32, 48), dtype=torch.uint8)
    for enc in (
        FrameFaceEncoder(SmallCNN(widths=(8, 16)), backbone_dim=16, hidden=24),
        HogFaceEncoder((32, 48), hidden=24),
    ):
        out = enc(frames)
        assert out.shape == (3, 5, 24) and torch.isfinite(out).all()
        out.square().mean().backward()
        missing = [n for n, p in enc.named_parameters() if p.requires_grad and p.grad is None]
        assert not missing, missing
    assert HogFaceEncoder((32, 48)).feature_dim == 4 * 6 * 8
    with pytest.raises(ConfigError, match="smaller than one HOG block"):
        HogFaceEncoder((4, 4))


def test_session_layers_mix_sessions_with_different_neurons():
    enc = NeuralEncoder(hidden=16, neuron_dropout=0.0).eval()
    enc.add_session("m01/s01", 5)
    enc.add_session("m02/s01", 3)
    enc.add_session("m01/s01", 5)  # idempotent
    x = torch.randn(4, 6, 5)
    x[2:, :, 3:] = 0.0  # padding of the 3-neuron session
    names = ["m01/s01", "m01/s01", "m02/s01", "m02/s01"]
    out = enc(x, names)
    assert out.shape == (4, 6, 16)
    # a row is its session's layer applied to its own columns: padding does not matter
    y = x.clone()
    y[2:, :, 3:] = 99.0
    torch.testing.assert_close(enc(y, names), out)
    assert enc.inputs.sessions() == {"m01/s01": 5, "m02/s01": 3}
    with pytest.raises(ConfigError, match="layer for 5 neurons exists"):
        enc.add_session("m01/s01", 6)
    with pytest.raises(ConfigError, match="no neural layer for session m09/s01"):
        enc(x, ["m09/s01"] * 4)
    out_layers = SessionLayers(16, "out")
    out_layers.add("m01/s01", 5)
    out_layers.add("m02/s01", 3)
    pred = out_layers(out, names, width=5)
    assert pred.shape == (4, 6, 5) and (pred[2:, :, 3:] == 0).all()


def test_info_nce_prefers_aligned_pairs_and_leaves_out_near_negatives():
    torch.manual_seed(0)
    z = torch.nn.functional.normalize(torch.randn(16, 8), dim=-1)
    scale = torch.tensor(10.0)
    aligned, acc = info_nce(z, z, scale)
    shuffled, _ = info_nce(z, z[torch.randperm(16)], scale)
    assert aligned < shuffled and acc == 1.0
    # near-in-time windows of the same session are not negatives: the loss equals the loss over the
    # far candidates only
    times = torch.arange(16, dtype=torch.float64)
    groups = ["a"] * 8 + ["b"] * 8
    zn = torch.nn.functional.normalize(z + 0.5 * torch.randn(16, 8), dim=-1)
    loss, _ = info_nce(z, zn, scale, times=times, groups=groups, exclude_s=1.5)
    logits = scale * z @ zn.T
    keep = ~(
        torch.tensor([[gi == gj for gj in groups] for gi in groups])
        & ((times[:, None] - times[None]).abs() < 1.5)
    )
    keep |= torch.eye(16, dtype=torch.bool)
    masked = logits.masked_fill(~keep, float("-inf"))
    target = torch.arange(16)
    ref = 0.5 * (
        torch.nn.functional.cross_entropy(masked, target)
        + torch.nn.functional.cross_entropy(masked.T, target)
    )
    torch.testing.assert_close(loss, ref)
    assert not torch.allclose(loss, info_nce(z, zn, scale)[0])


# --------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------


def test_retrieval_perfect_random_and_shuffled():
    rng = np.random.default_rng(0)
    t = np.arange(200) * 0.1
    g = np.array(["a"] * 100 + ["b"] * 100)
    z = rng.standard_normal((200, 16))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    perfect = jm.retrieval(z, z, t, g, tolerance_s=0.05)
    assert perfect["top1"] == 1.0 and perfect["top5"] == 1.0
    assert perfect["chance_top1"] == pytest.approx(0.01)  # one window within 0.05 s of 100
    other = rng.standard_normal((200, 16))
    rand = jm.retrieval(z, other / np.linalg.norm(other, axis=1, keepdims=True), t, g, tolerance_s=1.0)
    assert abs(rand["top5"] - rand["chance_top5"]) < 0.1
    roll = jm.half_roll(g)
    assert sorted(roll[:100]) == list(range(100)) and roll[0] == 50 and roll[100] == 150
    shuffled = jm.retrieval(z, z[roll], t, g, tolerance_s=0.05)
    assert shuffled["top1"] == 0.0


def test_variance_explained_and_ridge_baseline():
    rng = np.random.default_rng(1)
    latent = rng.standard_normal((600, 5))  # faces vary along a few directions, as HOG PCs do
    x = latent @ rng.standard_normal((5, 30)) + 0.1 * rng.standard_normal((600, 30))
    y = latent @ rng.standard_normal((5, 4)) + 0.5 * rng.standard_normal((600, 4))
    g = ["s"] * 600
    per, pop = jm.variance_explained(y, y, g)
    assert pop == 1.0 and np.allclose(per["s"], 1.0)
    assert jm.variance_explained(np.zeros_like(y) + y.mean(0), y, g)[1] == pytest.approx(0.0, abs=1e-12)
    pred = jm.ridge_baseline(x[:400], y[:400], x[400:], num_components=10)
    per, pop = jm.variance_explained(pred, y[400:], g[400:])
    expected = 1 - 0.25 / y[400:].var(0).mean()
    assert pop > 0.8 * expected and pop <= 1.0
    low = jm.ridge_baseline(x[:400], y[:400], x[400:], num_components=10, rank=1)
    assert jm.variance_explained(low, y[400:], g[400:])[1] < pop  # rank 1 of a rank-4 map loses some
    # padding columns of a session with fewer neurons are left out
    y_pad = np.concatenate([y[400:], np.full((200, 2), 7.0)], axis=1)
    pred_pad = np.concatenate([pred, np.zeros((200, 2))], axis=1)
    assert jm.variance_explained(pred_pad, y_pad, g[400:], {"s": 4})[1] == pytest.approx(pop)


def test_knn_decode_and_macro_f1():
    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(3), 50)
    x = y[:, None] + 0.2 * rng.standard_normal((150, 2))
    pred = jm.knn_decode(x[::2], y[::2], x[1::2], k=5)
    assert jm.macro_f1(y[1::2], pred) > 0.95
    assert jm.macro_f1(y[1::2], np.zeros(75, int)) < 0.3


def _windows(rng, m, sessions, latent_face, hog_dim=60, tower_dim=16, extra=None):
    """Windows of ``sessions`` (``{name: neurons}``, padded to the widest) as the joint module's held-out
    metrics take them: each session's activity is a linear read-out of a few HOG-visible face latents,
    plus (``extra``) of latents only the face tower's features carry, plus noise."""
    width = max(sessions.values())
    rows = {k: [] for k in ("names", "t", "hog", "face_feat", "neural_mean")}
    for g, n in sessions.items():
        a = rng.standard_normal((m, 4))  # what HOG sees (HOG PCs find it)
        b = rng.standard_normal((m, 3))  # what only the tower's features see
        hog_x = a @ latent_face["hog"] + 0.3 * rng.standard_normal((m, hog_dim))
        tower = b @ latent_face["tower"] + 0.3 * rng.standard_normal((m, tower_dim))
        y = a @ latent_face[g]["a"] + (b @ latent_face[g]["b"] if extra else 0) + rng.standard_normal((m, n))
        rows["neural_mean"].append(np.pad(y, ((0, 0), (0, width - n))))
        rows["names"].append(np.full(m, g))
        rows["t"].append(np.arange(m) * 0.4)
        rows["hog"].append(hog_x)
        rows["face_feat"].append(tower)
    out = {k: np.concatenate(v) for k, v in rows.items()}
    out["zf"] = out["zn"] = rng.standard_normal((len(out["t"]), 8))
    out["label"] = rng.integers(0, 7, len(out["t"]))
    return out


def test_head_adds_what_only_the_face_tower_sees_to_reduced_rank_ridge():
    """The predictive head (readout refitted on the training windows) is reduced-rank ridge (RRR) from
    HOG principal components plus a correction from the face tower's features. When the tower's
    features carry activity that HOG does not, the head explains clearly more held-out variance than
    RRR (increment 0.332, 0.318, 0.337 for data seeds 0, 1, 2: threshold 0.15, half of it); when
    they carry nothing more (a tower that learnt nothing, or from misaligned pairs) the correction
    is declined on the validation windows and the head stays within 0.01 of RRR (0.0001, 0.0000,
    -0.0001)."""
    from hydra.utils import instantiate

    module = instantiate(compose_cfg("train", JOINT, Path(".")).model)
    sessions = {"m01/s01": 30, "m02/s01": 24}
    for g, n in sessions.items():
        module.add_session(g, n)
    rng = np.random.default_rng(0)
    latent = {"hog": rng.standard_normal((4, 60)), "tower": rng.standard_normal((3, 16))}
    for g, n in sessions.items():
        latent[g] = {"a": 0.5 * rng.standard_normal((4, n)), "b": 0.6 * rng.standard_normal((3, n))}
    inc = {}
    for extra in (True, False):
        train, val, test = (_windows(rng, m, sessions, latent, extra=extra) for m in (400, 100, 150))
        out = module.held_out_metrics(train, test, val)
        inc[extra] = out["ve_population"] - out["ve_population_rrr"]
    assert inc[True] > 0.15, inc
    assert abs(inc[False]) < 0.01, inc


# --------------------------------------------------------------------------------------------------
# The pipeline on a small synthetic cohort (2 animals, different neuron counts)
# --------------------------------------------------------------------------------------------------

JOINT = [
    "experiment=joint",
    "data.synthesize=null",
    "data.image_size=[48,64]",
    "trainer.enable_progress_bar=false",
]


@pytest.fixture(scope="module")
def neural_data(tmp_path_factory):
    root = synthetic_world(
        tmp_path_factory, "joint_data", num_mice=2, minutes=2.0, seed=0, size=(64, 80), num_neurons=80
    )
    # the curator rejects a few of m02's cells: the two sessions then have different neuron counts
    path = root / "m02" / "s01" / "suite2p" / "plane0" / "iscell.npy"
    iscell = np.load(path)
    iscell[np.flatnonzero(iscell[:, 0] > 0.5)[:4], 0] = 0.0
    np.save(path, iscell)
    return root


def _train(root, run_dir, *extra):
    cfg = compose_cfg(
        "train", [*JOINT, f"data.root={root}", f"paths.output_dir={run_dir}", *extra], run_dir.parent
    )
    return tasks.train(cfg)


@pytest.fixture(scope="module")
def quick_run(neural_data, tmp_path_factory):
    """One short epoch: enough for the mechanics (files, checkpoint, embed, errors)."""
    run = tmp_path_factory.mktemp("joint_quick")
    return run, _train(neural_data, run, "trainer.max_epochs=1", "data.window_stride=8")


def test_windows_pad_sessions_and_skip_dropped_frames(neural_data):
    from hydra.utils import instantiate

    cfg = compose_cfg(
        "train", [*JOINT, f"data.root={neural_data}", "data.batch_size=500"], neural_data.parent
    )
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup()
    counts = dm.session_neurons
    assert len(counts) == 2 and len(set(counts.values())) == 2  # each animal's own population
    batch = next(iter(dm.reference_dataloader("train")))
    width = max(counts.values())
    assert batch["neural"].shape[1:] == (8, width)
    for i, (a, s) in enumerate(zip(batch["animal"], batch["session"])):
        n = counts[f"{a}/{s}"]
        assert int(batch["num_neurons"][i]) == n and (batch["neural"][i, :, n:] == 0).all()
    # the synthetic camera drops frames now and then: no window spans one
    ds = dm.datasets["train"]
    assert any(np.diff(t).max() > 0.075 for t in ds.times)  # there are drops
    for s, f in ds.index:
        t = ds.times[s][f : f + 8]
        assert np.diff(t).max() < 0.075
    # train and test windows come from different time blocks, with a gap between them
    tr, te = dm.datasets["train"], dm.datasets["test"]
    for k in range(2):
        t_tr = tr.times[k][tr.index[tr.index[:, 0] == k, 1]]
        t_te = te.times[k][te.index[te.index[:, 0] == k, 1]]
        assert np.abs(t_tr[:, None] - t_te[None, :]).min() >= 2.0 - 8 / 20.0


def test_quick_run_writes_metrics_and_a_self_describing_checkpoint(quick_run):
    from mouseemo.models.checkpoint import load_model

    run, metrics = quick_run
    saved = json.loads((run / "metrics.json").read_text())
    for key in ("retrieval_top1", "retrieval_top5", "ve_population", "ve_neuron_median", "ve_population_ridge",
                "ve_population_rrr", "knn_f1_embedding", "knn_f1_activity"):  # fmt: skip
        assert f"test/{key}" in saved and f"test/{key}_shuffle" in saved, key
        assert np.isfinite(saved[f"test/{key}"])
    # even one short epoch decodes emotions from the neural embedding better than with shuffled labels
    assert saved["test/knn_f1_embedding"] > saved["test/knn_f1_embedding_shuffle"]
    assert saved["test/knn_f1_activity"] > saved["test/knn_f1_activity_shuffle"]
    table = (run / "test_variance_explained.csv").read_text().splitlines()
    assert table[0] == "session,neuron,ve_head,ve_ridge" and len(table) > 100
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    joint = ckpt["joint"]
    assert set(joint["sessions"]) == {"m01/s01", "m02/s01"}
    assert joint["data"]["window"] == 8 and joint["data"]["lag_s"] == -0.5
    assert len(joint["stats"]["m01/s01"]["mean"]) == joint["sessions"]["m01/s01"]
    loaded = load_model(run / "checkpoints" / "last.ckpt")
    assert loaded.module.sessions == joint["sessions"] and not loaded.module.training


@pytest.fixture(scope="module")
def control_world(tmp_path_factory):
    """2 animals x 3 minutes, 100 ROIs: long enough for the held-out blocks to carry signal."""
    return synthetic_world(
        tmp_path_factory, "joint_control", num_mice=2, minutes=3.0, seed=0, size=(64, 80), num_neurons=100
    )


@pytest.fixture(scope="module")
def control_runs(control_world, tmp_path_factory):
    """The model (2 epochs, seed 42) and the training-time control: the same model trained on activity
    shifted against the camera (47 s: not a multiple of the stimulus schedule, which a 60 s shift
    partly re-aligns), both evaluated on the true alignment."""
    base = tmp_path_factory.mktemp("joint_control_runs")
    real = _train(control_world, base / "real", "trainer.max_epochs=2")
    ctrl = _train(control_world, base / "ctrl", "trainer.max_epochs=2", "data.misalign_s=47")
    return real, ctrl


def test_misaligned_training_control_falls_to_chance_and_the_real_model_beats_it(control_runs):
    """Unlike the evaluation-time shuffles the trained control can fail: a model that learned the
    face-neural relation beats it, a model exploiting a shortcut would not. Retrieval is measured
    against chance (a random ranking's hit rate, about 1/N times the windows within the tolerance):
    top-1 excess over chance 0.117, 0.089, 0.064 for training seeds 42, 1, 2 (threshold 0.04)."""
    real, ctrl = control_runs
    for key in ("retrieval_top1", "ve_population", "knn_f1_embedding"):
        assert real[f"test/{key}"] > ctrl[f"test/{key}"] + 0.03, (key, real, ctrl)
    assert real["test/retrieval_top1"] > real["test/retrieval_top1_chance"] + 0.04, real
    # the control is at chance on the true alignment
    assert ctrl["test/retrieval_top1"] <= ctrl["test/retrieval_top1_chance"] + 0.05
    assert ctrl["test/ve_population"] < 0.02 and ctrl["test/ve_population_rrr"] < 0.02
    assert ctrl["test/knn_f1_embedding"] < 0.3  # 7 classes


def test_joint_encoder_beats_every_shuffle_control(control_runs):
    """Every held-out metric beats its evaluation-time shuffle (one side of each test recording
    rolled by half its length) by 0.01 or more (smallest excess 0.038, 0.084, 0.020 for training
    seeds 42, 1, 2)."""
    real, _ = control_runs
    keys = [k[: -len("_shuffle")] for k in real if k.startswith("test/") and k.endswith("_shuffle")]
    assert len(keys) >= 9, keys
    for key in keys:
        assert real[key] > real[f"{key}_shuffle"] + 0.01, (key, real)


def test_checkpoint_re_evaluates_to_the_same_numbers(control_runs, control_world, tmp_path):
    """``evaluate`` of the saved checkpoint reproduces every test metric of the training run."""
    real, _ = control_runs
    ckpt = real["best_ckpt"]
    overrides = [
        *JOINT,
        f"data.root={control_world}",
        f"paths.output_dir={tmp_path / 'ev'}",
        f"ckpt_path={ckpt}",
    ]
    ev = tasks.evaluate(compose_cfg("evaluate", overrides, tmp_path))
    keys = [k for k in real if k.startswith("test/")]
    assert len(keys) > 20
    for key in keys:
        assert ev[key] == pytest.approx(real[key], abs=1e-6), (key, ev[key], real[key])


def test_embed_exports_per_imaging_frame(quick_run, neural_data, tmp_path):
    from mouseemo.data.sync import read_timestamps

    run, _ = quick_run
    session = neural_data / "m01" / "s01"
    out = tmp_path / "emb.npz"
    assert main(["embed", str(session), "--ckpt", str(run / "checkpoints" / "last.ckpt"), "--out", str(out),
                 "--cache-dir", str(tmp_path / "cache")]) == 0  # fmt: skip
    with np.load(out, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    m = len(arrays["t"])
    t_img = read_timestamps(session / "imaging_timestamps.csv")
    assert 0.8 * len(t_img) < m <= len(t_img)
    assert arrays["neural"].shape == arrays["face"].shape == (m, 64)
    np.testing.assert_allclose(np.linalg.norm(arrays["neural"], axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(arrays["t"], t_img[arrays["imaging_frame"]])
    assert arrays["label"].dtype == np.int64 and set(np.unique(arrays["label"])) <= set(range(-1, 7))
    assert list(arrays["classes"])[0] == "neutral" and str(arrays["layer"]) == "m01/s01"
    # each imaging frame's window ends at the camera frame it was paired with (after the lag)
    t_cam = read_timestamps(session / "face_timestamps.csv")
    assert np.abs(t_cam[arrays["camera_frame"]] - (arrays["t"] - 0.5)).max() < 0.04
    assert (
        main(["embed", str(session), "--ckpt", str(run / "checkpoints" / "last.ckpt"), "--out", str(out)])
        == 2
    )


def test_embed_errors_and_reusing_a_session_layer(quick_run, neural_data, tmp_path, capsys):
    run, _ = quick_run
    ckpt = str(run / "checkpoints" / "last.ckpt")
    # the same neurons imaged on another day: an unknown session, unless its layer is named
    other = tmp_path / "m01" / "s02"
    shutil.copytree(neural_data / "m01" / "s01", other, ignore=shutil.ignore_patterns(".cache"))
    meta = json.loads((other / "session.json").read_text())
    (other / "session.json").write_text(json.dumps({**meta, "session": "s02"}))
    args = ["embed", str(other), "--ckpt", ckpt, "--cache-dir", str(tmp_path / "cache")]
    assert main([*args, "--out", str(tmp_path / "a.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "no neural layer for session m01/s02" in err and "--session-layer" in err
    assert main([*args, "--out", str(tmp_path / "b.npz"), "--session-layer", "m01/s01"]) == 0
    with np.load(tmp_path / "b.npz", allow_pickle=False) as z:
        assert str(z["session"]) == "m01/s02" and str(z["layer"]) == "m01/s01"
    # a neuron fewer (a cell rejected by the curator): the layer does not fit
    iscell_path = other / "suite2p" / "plane0" / "iscell.npy"
    iscell = np.load(iscell_path)
    iscell[np.flatnonzero(iscell[:, 0] > 0.5)[0], 0] = 0
    np.save(iscell_path, iscell)
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "c.npz"), "--session-layer", "m01/s01"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "neurons but the checkpoint's layer for m01/s01 takes" in err
    assert not (tmp_path / "c.npz").exists()


def test_checkpoints_of_the_other_kind_are_refused_and_correlates_takes_a_classifier(
    quick_run, neural_data, tmp_path, capsys
):
    """`embed` needs a joint encoder, `correlates --ckpt` an expression model (here: a small CNN)."""
    run, _ = quick_run
    session = str(neural_data / "m01" / "s01")
    cls_run = tmp_path / "cls"
    m = tasks.train(compose_cfg("train", [
        f"data.root={neural_data}", "data.synthesize=null", "data.image_size=[48,64]", "data.split.kind=time",
        "model.net.widths=[8,16]", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
        f"paths.output_dir={cls_run}",
    ], tmp_path))  # fmt: skip
    cls_ckpt = m["best_ckpt"] or str(cls_run / "checkpoints" / "last.ckpt")
    assert main(["embed", session, "--ckpt", cls_ckpt, "--out", str(tmp_path / "e.npz")]) == 2
    assert "not a joint face-neural encoder" in capsys.readouterr().err
    assert (
        main(
            [
                "correlates",
                session,
                "--out",
                str(tmp_path / "c1"),
                "--ckpt",
                str(run / "checkpoints" / "last.ckpt"),
            ]
        )
        == 2
    )
    assert "not an expression model" in capsys.readouterr().err
    out = tmp_path / "c2"
    assert main(["correlates", session, "--out", str(out), "--ckpt", cls_ckpt, "--no-plot"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["face"]["kind"] == "prob" and s["face"]["names"] == ["pleasure", "disgust", "malaise", "pain",
                                                                  "passive_fear", "active_fear"]  # fmt: skip
    assert s["face"]["image_size"] == [48, 64] and s["num_neurons"] > 50


def test_fit_session_layer_for_a_session_held_out_of_training(control_world, tmp_path, capsys):
    """A new field of view: an animal left out of training gets its own input layer, fitted on its
    first two minutes with the towers frozen, retrieves its face windows far above chance on those
    minutes. (On the last, unfitted minute this small 2-epoch model is at chance, as it is on the
    trained animal's own late windows: retrieval there is not a property of the layer.)"""
    only = tmp_path / "m01_only"
    shutil.copytree(control_world / "m01", only / "m01", ignore=shutil.ignore_patterns(".cache"))
    metrics = _train(only, tmp_path / "run", "trainer.max_epochs=2")
    ckpt = metrics["best_ckpt"] or str(tmp_path / "run" / "checkpoints" / "last.ckpt")
    held = str(control_world / "m02" / "s01")
    args = ["embed", held, "--ckpt", ckpt, "--cache-dir", str(tmp_path / "cache")]
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "a.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "no neural layer for session m02/s01" in err and "--fit-session-layer" in err
    new = tmp_path / "m02.ckpt"
    out = tmp_path / "m02.npz"
    assert main([*args, "--out", str(out), "--fit-session-layer", str(new), "--fit-until-s", "120"]) == 0
    with np.load(out, allow_pickle=False) as z:
        face, neural, t = z["face"], z["neural"], z["t"]
    fitted = t < 120.0
    r = jm.retrieval(face[fitted], neural[fitted], t[fitted], ["m02/s01"] * int(fitted.sum()))
    assert r["top5"] > 2 * r["chance_top5"] and r["top1"] > 3 * r["chance_top1"], r
    # the fitted layer takes m02's neuron count: another day with one cell fewer is refused
    other = tmp_path / "m02" / "s02"
    shutil.copytree(control_world / "m02" / "s01", other, ignore=shutil.ignore_patterns(".cache"))
    meta = json.loads((other / "session.json").read_text())
    (other / "session.json").write_text(json.dumps({**meta, "session": "s02"}))
    iscell_path = other / "suite2p" / "plane0" / "iscell.npy"
    iscell = np.load(iscell_path)
    iscell[np.flatnonzero(iscell[:, 0] > 0.5)[0], 0] = 0
    np.save(iscell_path, iscell)
    capsys.readouterr()
    assert main(["embed", str(other), "--ckpt", str(new), "--session-layer", "m02/s01", "--out",
                 str(tmp_path / "x.npz"), "--cache-dir", str(tmp_path / "cache")]) == 2  # fmt: skip
    assert "neurons but the checkpoint's layer for m02/s01 takes" in capsys.readouterr().err
    # fitting on chosen frames (time blocks) uses exactly the windows that lie wholly on them
    from mouseemo.data.session import Session
    from mouseemo.inference.embed import joint_module, paired_session
    from mouseemo.inference.session_layer import fit_session_layer

    p = paired_session(Session.open(held), joint_module(ckpt), tmp_path / "cache")
    frames = np.zeros(len(p["times"]), bool)
    frames[: len(frames) // 4] = frames[len(frames) // 2 :] = True
    starts = p["ends"] - p["window"] + 1
    whole = np.flatnonzero([frames[a : a + p["window"]].all() for a in starts])  # spelt out, not shared code
    fit = fit_session_layer(
        held, ckpt, tmp_path / "blocks.ckpt", fit_frames=frames, cache_dir=tmp_path / "cache"
    )
    assert fit["windows"] == len(whole[::2])
    with pytest.raises(ConfigError, match="fit_frames must be a bool array"):
        fit_session_layer(
            held, ckpt, tmp_path / "bad.ckpt", fit_frames=frames[:-1], cache_dir=tmp_path / "cache"
        )
