"""One crop rule for every command given a session folder: ``--crop`` (``none``: the whole frame) >
the session.json crop > the model's crop; a session and a model whose crops differ are an error."""

import json

import numpy as np
import pytest

from mouseemo.cli import main
from mouseemo.data.session import resolve_crop
from mouseemo.errors import ConfigError
from mouseemo.inference.inputs import session_input
from mouseemo.inference.pipeline import PredictOptions, predict_video
from mouseemo.inference.scorers import load_scorer
from mouseemo.inference.traces import face_traces
from mouseemo.models.prototypes_io import Prototypes
from mouseemo.testing import write_session

PPC = 16  # HOG cells of 16 px: a 64x48 frame has 4x3 cells, a 32x32 crop 2x2
WHOLE, CROPPED = 4 * 3 * 8, 2 * 2 * 8  # HOG lengths (8 orientations)
SESSION_CROP = [0, 0, 32, 32]
OTHER_CROP = [16, 8, 32, 32]  # same size, other place: only the crops tell them apart


def _session(root, crop=SESSION_CROP, animal="m01"):
    """A 64x48 session whose session.json holds ``crop``."""
    path = write_session(root, animal=animal, num_frames=100, size=(48, 64))
    meta = json.loads((path / "session.json").read_text())
    (path / "session.json").write_text(json.dumps({**meta, "crop": crop}))
    return path


def _prototypes(tmp_path, source, *crop, name="p.npz"):
    out = tmp_path / name
    args = ["prototypes", str(source), "--out", str(out), "--pixels-per-cell", str(PPC), "--overwrite"]
    assert main([*args, *(["--crop", *crop] if crop else [])]) == 0
    return Prototypes.load(out)


def test_resolve_crop_precedence():
    meta = {"crop": SESSION_CROP}
    assert resolve_crop(None, None, meta) == tuple(SESSION_CROP)
    assert resolve_crop(None, OTHER_CROP, None) == tuple(OTHER_CROP)  # a plain video: the model's
    assert resolve_crop(None, SESSION_CROP, meta) == tuple(SESSION_CROP)
    assert resolve_crop("none", OTHER_CROP, meta) is None
    assert resolve_crop("der", OTHER_CROP, meta) == (8, 32, 60, 52)
    assert resolve_crop(OTHER_CROP, None, meta) == tuple(OTHER_CROP)
    with pytest.raises(ConfigError, match=r"\[0, 0, 32, 32\].*\[16, 8, 32, 32\] of p.npz.*`crop`"):
        resolve_crop(None, OTHER_CROP, meta, model="p.npz")


def test_prototypes_use_the_session_crop(tmp_path):
    sess = _session(tmp_path / "data")
    protos = _prototypes(tmp_path, sess)
    assert protos.feature_dim == CROPPED and tuple(protos.crop) == tuple(SESSION_CROP)
    protos = _prototypes(tmp_path, sess, "none")
    assert protos.feature_dim == WHOLE and protos.crop is None
    protos = _prototypes(tmp_path, sess, "0,0,32,16")
    assert protos.feature_dim == 2 * 1 * 8
    # a plain video file: no session.json, so the whole frame, as before
    protos = _prototypes(tmp_path, sess / "face.mp4")
    assert protos.feature_dim == WHOLE and protos.crop is None


def test_prototypes_refuse_sessions_of_different_crops(tmp_path, capsys):
    a = _session(tmp_path / "data", SESSION_CROP, "m01")
    b = _session(tmp_path / "data", OTHER_CROP, "m02")
    code = main(["prototypes", str(a), str(b), "--out", str(tmp_path / "p.npz"), "--pixels-per-cell", "16"])
    assert code == 2 and "--crop" in capsys.readouterr().err
    assert not (tmp_path / "p.npz").exists()
    assert main(["prototypes", str(a), str(b), "--out", str(tmp_path / "p.npz"), "--crop", "none"]) == 0


def _predict(tmp_path, sess, protos_path, crop=None):
    item = session_input(sess)
    scorer = load_scorer(protos_path, None, "cpu")
    out = tmp_path / "pred"
    predict_video(item, scorer, out, PredictOptions(crop=crop, plot=False, overwrite=True))
    return json.loads((out / f"{item.stem}.json").read_text())["crop"]


def test_predict_follows_the_session_crop(tmp_path):
    sess = _session(tmp_path / "data")
    _prototypes(tmp_path, sess, name="session.npz")  # built on the session's crop
    _prototypes(tmp_path, sess, "none", name="whole.npz")
    _prototypes(tmp_path, sess, ",".join(map(str, OTHER_CROP)), name="other.npz")
    assert _predict(tmp_path, sess, tmp_path / "session.npz") == SESSION_CROP
    assert _predict(tmp_path, sess, tmp_path / "whole.npz", "none") is None
    with pytest.raises(ConfigError, match="frame"):  # whole-frame prototypes, cropped session frames
        _predict(tmp_path, sess, tmp_path / "whole.npz")
    # the prototypes' crop and the session's differ: the old code took the prototypes' silently
    with pytest.raises(ConfigError, match=r"\[0, 0, 32, 32\].*\[16, 8, 32, 32\].*other\.npz"):
        _predict(tmp_path, sess, tmp_path / "other.npz")
    assert _predict(tmp_path, sess, tmp_path / "other.npz", tuple(OTHER_CROP)) == OTHER_CROP
    # the command: --crop none and a session folder
    args = ["predict", str(sess), "--prototypes", str(tmp_path / "whole.npz"), "--no-plot", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "cli"), "--crop", "none"]) == 0
    assert json.loads((tmp_path / "cli" / "m01_s01.json").read_text())["crop"] is None


def test_predict_on_a_plain_video_keeps_the_model_crop(tmp_path):
    sess = _session(tmp_path / "data")
    _prototypes(tmp_path, sess, ",".join(map(str, OTHER_CROP)), name="other.npz")
    out = tmp_path / "pred"
    args = ["predict", str(sess / "face.mp4"), "--prototypes", str(tmp_path / "other.npz"), "--out", str(out)]
    assert main([*args, "--no-plot", "--quiet"]) == 0
    assert json.loads((out / "face.json").read_text())["crop"] == OTHER_CROP


def _explain(tmp_path, sess, protos, *crop):
    out = tmp_path / "explain"
    args = ["explain", str(sess), "--prototypes", str(protos), "--frames", "0,5", "--out", str(out)]
    code = main([*args, "--overwrite", "--quiet", *(["--crop", *crop] if crop else [])])
    if code:
        return code
    with np.load(out / "m01_s01.explain.npz", allow_pickle=False) as z:
        return z["maps"].shape[-2:]


def test_explain_follows_the_session_crop(tmp_path, capsys):
    sess = _session(tmp_path / "data")
    _prototypes(tmp_path, sess, name="session.npz")
    _prototypes(tmp_path, sess, "none", name="whole.npz")
    _prototypes(tmp_path, sess, ",".join(map(str, OTHER_CROP)), name="other.npz")
    assert _explain(tmp_path, sess, tmp_path / "session.npz") == (32, 32)
    assert _explain(tmp_path, sess, tmp_path / "whole.npz", "none") == (48, 64)
    capsys.readouterr()
    assert _explain(tmp_path, sess, tmp_path / "other.npz") == 2
    err = capsys.readouterr().err
    assert "[0, 0, 32, 32]" in err and "[16, 8, 32, 32]" in err and "--crop" in err
    assert _explain(tmp_path, sess, tmp_path / "other.npz", "16,8,32,32") == (32, 32)


def test_live_and_correlates_follow_the_session_crop(tmp_path):
    sess = _session(tmp_path / "data")
    _prototypes(tmp_path, sess, name="session.npz")
    _prototypes(tmp_path, sess, ",".join(map(str, OTHER_CROP)), name="other.npz")
    summary = tmp_path / "live.json"
    args = ["live", "--video", str(sess), "--prototypes", str(tmp_path / "session.npz"), "--max-frames", "5"]
    assert main([*args, "--as-fast-as-possible", "--no-drop", "--quiet", "--summary", str(summary)]) == 0
    assert json.loads(summary.read_text())["crop"] == SESSION_CROP
    args[4] = str(tmp_path / "other.npz")
    assert main([*args, "--as-fast-as-possible", "--quiet", "--summary", str(summary), "--overwrite"]) == 2
    # correlates' face traces: the session's own prototypes on its crop; a differing file is refused
    face = face_traces(sess, pixels_per_cell=PPC)
    assert face.info["crop"] == SESSION_CROP
    assert face_traces(sess, pixels_per_cell=PPC, crop="none").info["crop"] is None
    with pytest.raises(ConfigError, match=r"\[16, 8, 32, 32\]"):
        face_traces(sess, prototypes=tmp_path / "other.npz")
