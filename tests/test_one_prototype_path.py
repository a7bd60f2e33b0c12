"""Training, `mouseemo prototypes` and `mouseemo predict` share one prototype path and one baseline rule."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import numpy as np
import pytest

from mouseemo import tasks
from mouseemo.cli import main
from mouseemo.data.events import read_events
from mouseemo.data.face_datamodule import FaceFramesDataModule
from mouseemo.data.session import discover_sessions, session_times
from mouseemo.data.session_neutral import baseline_indices, neutral_frames, session_baseline_mask
from mouseemo.data.video import VideoReader
from mouseemo.inference.inputs import resolve_inputs
from mouseemo.inference.prototype_scorer import PrototypeScorer
from mouseemo.inference.prototypes import build_from_videos
from mouseemo.models.components.prototypes import FitUnit, carry_to_neutral, fit_prototypes
from mouseemo.models.hog_proto_module import HogProtoLitModule
from mouseemo.models.prototypes_io import Prototypes
from tests.helpers import write_dataset, write_session
from tests.test_configs import compose_cfg
from tests.test_predict import scores_of

HOG = {"pixels_per_cell": 16}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A `hog_proto` run (own neutral) and a prototypes file built from its training sessions."""
    tmp = tmp_path_factory.mktemp("one_path")
    root = write_dataset(tmp / "ds", num_mice=3, num_frames=140)
    run = tmp / "run"
    overrides = [
        "model=hog_proto", f"data.root={root}", "data.synthesize=null", "data.image_size=[48,64]",
        "data.label_source=events", "data.batch_size=64", "data.train_stride=1", "data.eval_stride=1",
        "model.hog.pixels_per_cell=[16,16]", "model.mode=least-neutral", "model.k=5",
        "trainer.enable_progress_bar=false",
        "++baseline=null", f"paths.output_dir={run}",
    ]  # fmt: skip
    metrics = tasks.train(compose_cfg("train", overrides, tmp))
    from_run = Prototypes.load(run / "prototypes.npz")
    sessions = [s.path for s in discover_sessions(root) if str(s.video) in from_run.sources]
    assert len(sessions) == 1  # one training animal, one validation animal, one test animal
    built = build_from_videos(
        resolve_inputs([str(s) for s in sessions], None, True), hog=HOG, k=5, resize=(48, 64)
    )
    built.save(tmp / "protos.npz")
    new = write_session(tmp / "new", animal="m09", num_frames=140, seed=9)
    return {"tmp": tmp, "run": run, "ckpt": metrics["best_ckpt"], "protos": tmp / "protos.npz", "new": new,
            "from_run": from_run, "built": built, "root": root}  # fmt: skip


def _predict(out, *args) -> None:
    assert main(["predict", *[str(a) for a in args], "--out", str(out), "--no-plot", "--quiet"]) == 0


def test_checkpoint_and_prototypes_file_score_a_new_video_identically(trained):
    run, built = trained["from_run"], trained["built"]
    assert run.names == built.names and len(run.names) == 7
    np.testing.assert_allclose(run.matrix, built.matrix, rtol=0, atol=1e-12)
    out = trained["tmp"] / "pred"
    _predict(out / "ckpt", trained["new"], "--ckpt", trained["ckpt"])
    _predict(out / "file", trained["new"], "--prototypes", trained["protos"])
    by_ckpt, by_file = (scores_of(out / k / "m09_s01.csv", "similarity") for k in ("ckpt", "file"))
    assert by_ckpt.shape == (140, 7)
    np.testing.assert_allclose(by_ckpt, by_file, atol=2e-6)
    labels = [
        [r[2] for r in csv.reader((out / k / "m09_s01.csv").read_text().splitlines())]
        for k in ("ckpt", "file")
    ]
    assert labels[0] == labels[1]


def test_a_session_scored_against_its_own_neutral_as_predict_scores_it(trained):
    # the run's test animal, scored by the module against its own neutral, and by `predict --neutral own`
    with open(trained["run"] / "test_predictions.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    header, rows = rows[0], rows[1:]
    animal = rows[0][0]
    cols = [i for i, h in enumerate(header) if h.startswith("similarity_")]
    rows = sorted((r for r in rows if r[0] == animal), key=lambda r: int(r[2]))
    by_module = np.array([[float(r[i]) for i in cols] for r in rows])
    out = trained["tmp"] / "own"
    _predict(out, trained["root"] / animal / "s01", "--prototypes", trained["protos"], "--neutral", "own")
    by_predict = scores_of(out / f"{animal}_s01.csv", "similarity")
    assert by_module.shape == by_predict.shape == (140, 7)
    np.testing.assert_allclose(by_module, by_predict, atol=2e-5)


def _datamodule(root):
    dm = FaceFramesDataModule(
        str(root), synthesize=None, label_source="truth", image_size=(48, 64),
        split={"test_animals": 1, "val_animals": 0}, batch_size=16,
    )  # fmt: skip
    dm.prepare_data()
    dm.setup()
    return dm


def test_training_and_predict_take_the_same_baseline_frames(tmp_path):
    # 160 frames: a neutral window at 0-1 s and another at 7-8 s, after six stimuli
    root = write_dataset(tmp_path / "ds", num_mice=2, num_frames=160)
    session = discover_sessions(root)[0]
    times = session_times(session, 160)
    events = read_events(session.events_path)
    mask = session_baseline_mask(session, times)
    np.testing.assert_array_equal(mask, events.baseline_mask(times))
    assert mask.sum() == 40 and mask[140:].all()  # both neutral windows, not only the pre-stimulus one
    np.testing.assert_array_equal(neutral_frames(session, times, 25), baseline_indices(mask, 25))

    # the call sites: the module's neutral of a session, and `predict --neutral own`'s of its video
    model = HogProtoLitModule(hog=HOG, neutral_frames=25)
    model._trainer = SimpleNamespace(datamodule=_datamodule(root))
    model._ensure_neutrals()
    protos = build_from_videos(resolve_inputs([str(session.path)], None, True), hog=HOG, k=5)
    scorer = PrototypeScorer(protos, "p.npz", "cpu", neutral="own", neutral_frames=25)
    with VideoReader(session.video) as vr:
        scorer = scorer.for_video(vr, 160, events=events)
    assert scorer.neutral_info == {"source": "baseline frames of its events", "frames": 25}
    own = scorer.matrix[protos.names.index("neutral")].double().numpy()
    np.testing.assert_allclose(own, model.neutrals[session.name], atol=1e-6)


def test_fit_and_carry_are_the_same_arithmetic_for_every_caller():
    rng = np.random.default_rng(1)
    d = 12
    units = []
    for name, group in (("a/s1", "a"), ("a/s2", "a"), ("b/s1", "b")):
        feats = rng.normal(size=(30, d))
        ids = np.full(30, -1)
        ids[10:20] = 0
        units.append(FitUnit(name, feats, {"pain": ids}, neutral=feats[:10].mean(0), group=group))
    plain, sets = fit_prototypes(units, k=3)
    # the sessions of one animal first, then animals
    by_animal = np.mean([np.mean([sets[0].matrix, sets[1].matrix], axis=0), sets[2].matrix], axis=0)
    np.testing.assert_allclose(plain.matrix, by_animal)
    each, _ = fit_prototypes([FitUnit(u.name, u.features, u.windows, neutral=u.neutral) for u in units], k=3)
    np.testing.assert_allclose(each.matrix, np.mean([s.matrix for s in sets], axis=0))
    rel, _ = fit_prototypes(units, k=3, relative=True)
    # changes averaged per animal, then over animals, on top of the mean neutral
    change = [s.matrix[1] - s.matrix[0] for s in sets]
    neutral = [s.matrix[0] for s in sets]
    expected_change = np.mean([np.mean(change[:2], axis=0), change[2]], axis=0)
    expected_neutral = np.mean([np.mean(neutral[:2], axis=0), neutral[2]], axis=0)
    np.testing.assert_allclose(rel.matrix[0], expected_neutral)
    np.testing.assert_allclose(rel.matrix[1], expected_neutral + expected_change)
    own = rng.normal(size=d)
    carried = carry_to_neutral(rel.matrix, rel.names, own)
    np.testing.assert_allclose(carried[0], own)
    np.testing.assert_allclose(carried[1] - carried[0], rel.matrix[1] - rel.matrix[0])
    import torch

    torch.testing.assert_close(
        carry_to_neutral(torch.as_tensor(rel.matrix), rel.names, torch.as_tensor(own)).numpy(), carried
    )
