"""The ``rateable`` column of the prediction CSV: QC rules on planted blur, occlusion and out-of-crop
frames, abstention, the learned unrateable score, the coverage curve, and readers of old CSVs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mouseemo.cli import main
from mouseemo.errors import ConfigError, DataError
from mouseemo.inference.inputs import VideoInput
from mouseemo.inference.pipeline import PredictOptions, predict_video
from mouseemo.inference.rateable import (
    ABSTAIN,
    COLUMNS,
    FEATURES,
    RateableFrames,
    RateableModel,
    coverage_curve,
    label_agreement,
    prediction_features,
    sidecar_path,
    synthetic_nuisance,
    thresholds_for_coverage,
)
from mouseemo.inference.scorers import load_scorer
from mouseemo.inference.traces import traces_from_csv
from mouseemo.testing import face_like_frames, untrained_checkpoint, write_video

N, SIZE = 160, (64, 96)
BLUR, OCCLUDED, SHIFTED = range(40, 50), range(80, 90), range(120, 130)


def planted_frames(
    seed: int, blur_sigma: float = 3.0, occluded: float = 0.4, shift: bool = True
) -> np.ndarray:
    """A still textured face with sensor noise and sub-pixel jitter; frames in ``BLUR`` are blurred,
    in ``OCCLUDED`` a paw-like texture covers the lower left ``occluded`` of the width, and in
    ``SHIFTED`` the face slides a third of the width (out of the crop)."""
    rng = np.random.default_rng(seed)
    h, w = SIZE
    base = face_like_frames(1, h, w, seed=seed, sigma=2.0)[0].astype(np.float32)
    paw = face_like_frames(1, h, w, seed=seed + 1000, sigma=2.0)[0]
    out = np.empty((N, h, w), np.uint8)
    for i in range(N):
        dx, dy = rng.normal(0, 0.2, 2)
        f = cv2.warpAffine(base, np.float32([[1, 0, dx], [0, 1, dy]]), (w, h), borderMode=cv2.BORDER_REFLECT)
        f = f + rng.normal(0, 2.0, SIZE)
        if i in BLUR:
            f = cv2.GaussianBlur(f, (0, 0), blur_sigma)
        if i in OCCLUDED:
            f[h // 3 :, : int(w * occluded)] = paw[h // 3 :, : int(w * occluded)]
        if shift and i in SHIFTED:
            f = np.roll(f, w // 3, axis=1)
        out[i] = np.clip(f, 0, 255).astype(np.uint8)
    return out


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return untrained_checkpoint(tmp_path_factory.mktemp("ckpt") / "cnn.ckpt")


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("planted")
    write_video(root / "planted.avi", planted_frames(0), 20.0, "MJPG")
    return root


def predict(video: Path, ckpt: Path, out: Path, **kw) -> tuple[dict, list[str], list[list[str]]]:
    scorer = load_scorer(None, str(ckpt), "cpu")
    kw.setdefault("min_confidence", 0.0)  # an untrained network is never confident: rules from the image only
    summary = predict_video(
        VideoInput(video, None, video.stem), scorer, out, PredictOptions(plot=False, **kw)
    )
    header, rows = read_csv(out / f"{video.stem}.csv")
    return summary, header, rows


def test_rules_flag_exactly_the_planted_frames(videos, ckpt, tmp_path):
    summary, header, rows = predict(videos / "planted.avi", ckpt, tmp_path)
    assert header[-2:] == list(COLUMNS) and header[:3] == ["frame", "time_s", "label"]
    assert summary["columns"] == header
    rateable = np.array([int(r[header.index("rateable")]) for r in rows])
    expected = np.ones(N, int)
    expected[[*BLUR, *OCCLUDED, *SHIFTED]] = 0
    np.testing.assert_array_equal(rateable, expected)
    score = np.array([float(r[-1]) for r in rows])
    assert np.all(score[expected == 0] == 1.0) and np.all(score[expected == 1] == 0.0)
    rate = summary["rateable"]
    # each rule on its own frames: blur is not a moved face, an occluded face is not a blurred one
    assert rate["rules"] == {"blur": len(BLUR), "face": len(OCCLUDED) + len(SHIFTED), "low_confidence": 0}
    assert rate["rateable_frames"] == N - 30 and rate["model"] is None and not rate["abstain"]
    assert all(r[2] for r in rows)  # without abstention every frame keeps its label


def test_low_confidence_rule_and_threshold(videos, ckpt, tmp_path):
    # an untrained network's top probability stays far below 0.99: every frame is low-confidence
    summary, header, rows = predict(videos / "planted.avi", ckpt, tmp_path / "a", min_confidence=0.99)
    assert summary["rateable"]["rules"]["low_confidence"] == N
    assert summary["rateable"]["rateable_frames"] == 0
    # threshold 1: nothing is unrateable, the scores stay
    summary, header, rows = predict(videos / "planted.avi", ckpt, tmp_path / "b", rateable_threshold=1.0)
    assert all(r[header.index("rateable")] == "1" for r in rows)
    assert sum(r[-1] == "1.0000" for r in rows) == 30


def test_abstain_empties_labels_exactly_on_unrateable_frames(videos, ckpt, tmp_path):
    _, header, plain = predict(videos / "planted.avi", ckpt, tmp_path / "plain")
    summary, header2, abst = predict(videos / "planted.avi", ckpt, tmp_path / "abstain", abstain=True)
    assert header2 == header and summary["rateable"]["abstain"]
    ri = header.index("rateable")
    for p, a in zip(plain, abst, strict=True):
        if a[ri] == "0":
            assert a[2] == ABSTAIN and p[2] != ""
        else:
            assert a[2] == p[2] != ""
        assert a[3:] == p[3:]  # probabilities and the rateable columns are unchanged
    assert sum(a[2] == ABSTAIN for a in abst) == 30


def test_learned_score_ranks_nuisance_frames_first(ckpt, tmp_path):
    """Fitted on one video's mild nuisances (below every rule), the learned score ranks another
    video's nuisance frames above its clean ones; used by predict from the checkpoint's sidecar."""
    aucs = []
    for seed in (1, 2, 3):
        feats = {}
        for part, s in (("fit", seed), ("test", seed + 10)):
            video = write_video(
                tmp_path / f"{part}{seed}.avi", planted_frames(s, 0.8, 0.12, False), 20.0, "MJPG"
            )
            predict(video, ckpt, tmp_path / f"out{seed}")
            feats[part], _ = prediction_features(tmp_path / f"out{seed}" / f"{video.stem}.json")
        target = np.zeros(N, bool)
        target[[*BLUR, *OCCLUDED]] = True
        model = RateableModel.fit(feats["fit"], nuisance=target, seed=seed)
        aucs.append(roc_auc_score(target, model.score(feats["test"])))
    assert min(aucs) > 0.85, aucs
    # predict reads the sidecar: its score column is the model's probability and its threshold applies
    model.save(sidecar_path(ckpt))
    try:
        summary, header, rows = predict(tmp_path / "test3.avi", ckpt, tmp_path / "side")
    finally:
        sidecar_path(ckpt).unlink()
    assert summary["rateable"]["model"] == str(sidecar_path(ckpt))
    assert summary["rateable"]["threshold"] == pytest.approx(model.threshold)
    assert "low_confidence" not in summary["rateable"]["rules"]  # the model reads the confidence itself
    score = np.array([float(r[-1]) for r in rows])
    assert summary["rateable"]["rules"] == {"blur": 0, "face": 0}  # mild: no rule fires
    np.testing.assert_allclose(score, model.score(feats["test"]), atol=1e-4)
    assert roc_auc_score(target, score) > 0.85


def test_sidecar_and_threshold_errors(ckpt, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"features": ["nope"], "mean": [0], "scale": [1], "coef": [1], "intercept": 0,
                               "threshold": 0.5}))  # fmt: skip
    with pytest.raises(DataError, match="bad.json"):
        RateableModel.load(bad)
    bad.write_text("{")
    with pytest.raises(DataError, match="not a rateable model"):
        RateableModel.load(bad)
    assert main(["predict", str(tmp_path), "--ckpt", str(ckpt), "--out", str(tmp_path / "o"),
                 "--rateable-threshold", "2"]) == 2  # fmt: skip
    assert "--rateable-threshold must be in [0, 1]" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="`rateable_threshold`"):
        RateableFrames(threshold=-0.1)
    with pytest.raises(DataError, match="both rateable and unrateable"):
        RateableModel.fit({f: np.zeros(4) for f in FEATURES}, np.zeros(4, bool), np.ones(4, bool))


def test_coverage_curve_bookkeeping():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 500)
    wrong = rng.random(500) < 0.3
    pred = np.where(wrong, (y + 1) % 4, y)
    score = np.clip(0.5 * wrong + 0.6 * rng.random(500), 0, 1)  # wrong frames score higher
    curve = coverage_curve(score, y, pred)
    cov = [c["coverage"] for c in curve]
    assert [c["threshold"] for c in curve] == sorted(c["threshold"] for c in curve)
    assert all(a <= b for a, b in zip(cov, cov[1:])) and cov[-1] == 1.0
    assert all(c["kept"] == int(np.sum(score <= c["threshold"])) for c in curve)
    assert curve[-1]["macro_f1_kept"] == pytest.approx(curve[-1]["macro_f1_all"])
    t = thresholds_for_coverage(score, [0.9, 0.5])
    at = coverage_curve(score, y, pred, t)
    assert at[0]["coverage"] == pytest.approx(0.5, abs=0.01) and at[1]["coverage"] == pytest.approx(
        0.9, abs=0.01
    )
    # abstaining on the high scores keeps more right frames: macro-F1 rises as coverage falls
    assert at[0]["macro_f1_kept"] > at[1]["macro_f1_kept"] > at[0]["macro_f1_all"]
    # dropping every frame of a class does not raise macro-F1: the class counts with F1 0
    hard = (y == 3) | (rng.random(500) < 0.05)
    drop = coverage_curve(hard.astype(float), y, pred, [0.0])[0]
    assert drop["macro_f1_kept"] < drop["macro_f1_all"]
    # a score that knows nothing: macro-F1 stays where it was
    flat = coverage_curve(np.zeros(500), y, pred, [0.0])
    assert flat[0]["coverage"] == 1.0 and flat[0]["macro_f1_kept"] == pytest.approx(flat[0]["macro_f1_all"])


def test_label_agreement():
    np.testing.assert_allclose(
        label_agreement(np.array([0, 0, 1, 0, 0]), half=1), [1, 2 / 3, 1 / 3, 2 / 3, 1]
    )


def test_synthetic_nuisance_from_truth():
    truth = {
        "label": np.zeros(4, int),
        "paw_occlusion": np.array([0, 0.5, 0, 0]),
        "blink": np.array([0, 0, 0.9, 0.2]),
    }
    np.testing.assert_array_equal(synthetic_nuisance(truth), [False, True, True, False])
    assert not synthetic_nuisance({"label": np.zeros(3, int)}).any()  # a truth file without the columns


def test_readers_of_prediction_csvs_old_and_new(videos, ckpt, tmp_path):
    _, header, rows = predict(videos / "planted.avi", ckpt, tmp_path, abstain=True)
    new = traces_from_csv(tmp_path / "planted.csv")
    names = [h.removeprefix("prob_") for h in header if h.startswith("prob_")]
    assert new.names == names and new.scores.shape == (N, len(names))
    old = tmp_path / "old.csv"  # the file as it was written before the rateable columns
    with open(old, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header[:-2])
        w.writerows(r[:-2] for r in rows)
    back = traces_from_csv(old)
    assert back.names == names
    np.testing.assert_array_equal(back.scores, new.scores)
