"""StageMetrics against scikit-learn on labels with ignored frames."""

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score

from mouseemo.data.events import IGNORE_INDEX
from mouseemo.models.metrics import StageMetrics

CLASSES = ["neutral", "pleasure", "disgust", "fear"]


def batches(seed):
    rng = np.random.default_rng(seed)
    out = []
    for n in (30, 17, 5):
        target = rng.integers(0, 4, n)
        target[rng.random(n) < 0.2] = IGNORE_INDEX
        preds = np.where(rng.random(n) < 0.6, np.maximum(target, 0), rng.integers(0, 4, n))
        out.append((torch.as_tensor(preds), torch.as_tensor(target)))
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_stage_metrics_match_sklearn(seed):
    m = StageMetrics("val", CLASSES)
    data = batches(seed)
    for p, t in data:
        m.update(p, t)
    m.update(torch.tensor([2, 3]), torch.tensor([IGNORE_INDEX, IGNORE_INDEX]))  # all ignored: no-op
    out, cm = m.compute()
    p = np.concatenate([b[0].numpy() for b in data])
    t = np.concatenate([b[1].numpy() for b in data])
    keep = t != IGNORE_INDEX
    p, t = p[keep], t[keep]
    assert set(out) == {"val/accuracy", "val/balanced_accuracy", "val/macro_f1"} | {
        f"val/f1_{c}" for c in CLASSES
    }
    assert out["val/accuracy"] == pytest.approx(accuracy_score(t, p), abs=1e-6)
    assert out["val/balanced_accuracy"] == pytest.approx(balanced_accuracy_score(t, p), abs=1e-6)
    assert out["val/macro_f1"] == pytest.approx(f1_score(t, p, average="macro", labels=range(4)), abs=1e-6)
    per = f1_score(t, p, average=None, labels=range(4))
    for c, v in zip(CLASSES, per):
        assert out[f"val/f1_{c}"] == pytest.approx(v, abs=1e-6)
    assert all(type(v) is float for v in out.values())
    assert cm.device.type == "cpu"
    np.testing.assert_array_equal(cm.numpy(), confusion_matrix(t, p, labels=range(4)))


def test_stage_metrics_reset_and_names():
    m = StageMetrics("test", ["a", "b"])
    assert m.stage == "test" and m.classes == ["a", "b"]
    m.update(torch.tensor([1, 1]), torch.tensor([0, 0]))
    m.reset()
    m.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, IGNORE_INDEX]))
    out, cm = m.compute()
    assert out == {
        "test/accuracy": 1.0,
        "test/balanced_accuracy": 1.0,
        "test/macro_f1": 1.0,
        "test/f1_a": 1.0,
        "test/f1_b": 1.0,
    }
    np.testing.assert_array_equal(cm.numpy(), [[1, 0], [0, 1]])
