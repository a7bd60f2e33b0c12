"""Files from other people cannot run code, and edge inputs give one clear error.

- Suite2p ``ops.npy``/``stat.npy`` and CaImAn ``.npz`` object arrays are unpickled through an
  allow-list: real files load as ``np.load(allow_pickle=True)`` loads them, crafted ones are refused
  before anything runs.
- One- and two-frame videos read every frame.
- ``events.csv`` and the other text files users hand in accept Excel's UTF-8 byte-order mark and
  refuse UTF-16 and binary files with one error naming the file.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from mouseemo.cli import main
from mouseemo.errors import DataError
from tests.helpers import write_session, write_video

REPO = Path(__file__).resolve().parents[1]
PLANE = Path("suite2p") / "plane0"


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout's mouseemo, wherever pytest runs
    return subprocess.run(
        [sys.executable, "-m", "mouseemo", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env=env,
    )


def _one_error_line(code: int, err: str) -> str:
    assert code == 2, err[-800:]
    assert "Traceback" not in err, err[-800:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mouseemo: error:"), err[-800:]
    return lines[0]


# --------------------------------------------------------------------------------------------------
# Restricted unpickling of Suite2p and CaImAn files
# --------------------------------------------------------------------------------------------------


def _same(a, b, where="") -> None:
    """``a`` and ``b`` hold the same types and values, recursively."""
    assert type(a) is type(b), (where, type(a), type(b))
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        if a.dtype.hasobject:
            for i, (x, y) in enumerate(zip(a.ravel(), b.ravel())):
                _same(x, y, f"{where}[{i}]")
        else:
            assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    elif sp.issparse(a):
        assert a.shape == b.shape and (a != b).nnz == 0, where
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b, where


class _Payload:
    """Pickles as a call that writes ``marker``, as a crafted file would."""

    def __init__(self, marker: Path, via: str = "eval") -> None:
        self.marker, self.via = marker, via

    def __reduce__(self):
        if self.via == "system":
            return (os.system, (f"touch {self.marker}",))
        return (eval, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def _write_object_npy(path: Path, obj: np.ndarray, protocol: int) -> None:
    """An object-array ``.npy`` pickled with ``protocol`` (np.save always uses its own)."""
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "|O", "fortran_order": False, "shape": obj.shape})
        pickle.dump(obj, fh, protocol=protocol)


@pytest.fixture(scope="module")
def synth_session(tmp_path_factory) -> Path:
    """A short synthetic session written by mouseemo's own writer (Suite2p folder included)."""
    from mouseemo.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("safe_synth")
    return generate_dataset(root, num_mice=1, minutes=0.5, seed=1, size=(64, 64), num_neurons=12, workers=1)[
        0
    ]


def test_real_suite2p_files_load_as_np_load_does(real_data_dir):
    from mouseemo.data.imaging import load_suite2p
    from mouseemo.utils.safe_pickle import load_npy

    plane = real_data_dir / "suite2p_fissa_example" / PLANE
    for name in ("ops.npy", "stat.npy", "F.npy", "iscell.npy"):
        _same(load_npy(plane / name), np.load(plane / name, allow_pickle=True, encoding="latin1"), name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # fs == 1 in this file
        rec = load_suite2p(plane, only_cells=False)
    assert rec.F.shape == (23, 864)
    assert rec.ops["Ly"] == 176 and rec.ops["date_proc"].year == 2021
    ref = np.load(plane / "stat.npy", allow_pickle=True)
    for got, want in zip(rec.stat, ref):
        _same(got, want)


def test_real_caiman_file_loads_as_np_load_does(real_data_dir):
    from mouseemo.data.imaging import load_caiman_npz
    from mouseemo.utils.safe_pickle import SPARSE_GLOBALS, load_npz

    path = real_data_dir / "caiman_cnmf_demo" / "groundtruth_demoMovie.npz"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # old pickles name scipy.sparse.coo
        with np.load(path, allow_pickle=True, encoding="latin1") as z:
            ref = {k: z[k] for k in z.files}
    got = load_npz(path, extra=SPARSE_GLOBALS)
    assert list(got) == list(ref)
    for k in ref:
        _same(got[k], ref[k], k)
    assert isinstance(got["A_full"].item(), sp.coo_matrix)
    rec = load_caiman_npz(path)
    assert rec.C.shape == (16, 2000)


def test_synthetic_suite2p_files_load_as_np_load_does(synth_session):
    from mouseemo.data.imaging import load_suite2p
    from mouseemo.utils.safe_pickle import load_npy

    plane = synth_session / PLANE
    for name in ("ops.npy", "stat.npy"):
        _same(load_npy(plane / name), np.load(plane / name, allow_pickle=True), name)
    rec = load_suite2p(plane, only_cells=False)
    assert rec.ops["fs"] > 1 and len(rec.stat) == rec.F.shape[0]


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("name", ["ops.npy", "stat.npy"])
def test_crafted_suite2p_file_is_refused_before_it_runs(synth_session, tmp_path, name, protocol):
    from mouseemo.data.imaging import load_suite2p

    plane = shutil.copytree(synth_session / PLANE, tmp_path / "plane0")
    marker = tmp_path / "marker"
    arr = np.load(plane / name, allow_pickle=True)
    if name == "ops.npy":
        ops = {**arr.item(), "note": _Payload(marker)}
        arr = np.empty((), dtype=object)
        arr[()] = ops
    else:
        arr[0]["note"] = _Payload(marker)
    _write_object_npy(plane / name, arr, protocol)
    with pytest.raises(DataError) as info:
        load_suite2p(plane)
    assert not marker.exists()
    msg = str(info.value)
    # Python 3's protocol 2 writes bytes through _codecs.encode, which np.save never does: refused too
    refused = "_codecs.encode" if protocol == 2 else "builtins.eval"
    assert msg.startswith(f"{plane / name}: refusing to unpickle {refused}")
    assert "Suite2p files may only hold arrays, dicts, lists, numbers and strings" in msg


def test_crafted_stat_for_a_tiff_is_refused(tmp_path):
    from mouseemo.data.imaging import load_activity

    marker = tmp_path / "marker"
    stat = np.empty(1, dtype=object)
    stat[0] = {"ypix": np.arange(3), "xpix": np.arange(3), "x": _Payload(marker, "system")}
    np.save(tmp_path / "stat.npy", stat, allow_pickle=True)
    import tifffile

    tifffile.imwrite(tmp_path / "movie.tif", np.zeros((4, 8, 8), np.uint16), photometric="minisblack")
    with pytest.raises(DataError, match=r"stat\.npy: refusing to unpickle (posix|nt)\.system"):
        load_activity(tmp_path / "movie.tif", kind="tiff", signal="F", stat=tmp_path / "stat.npy")
    assert not marker.exists()


def test_crafted_caiman_file_is_refused_before_it_runs(tmp_path):
    from mouseemo.data.imaging import load_caiman_npz

    marker = tmp_path / "marker"
    info = np.empty((), dtype=object)
    info[()] = {"params": {"fr": 10.0}, "x": _Payload(marker)}
    A = np.empty((), dtype=object)
    A[()] = sp.coo_matrix(np.eye(16, 2))
    path = tmp_path / "results.npz"
    np.savez(path, A=A, C=np.ones((2, 5)), information=info, dims=np.array([4, 4]))
    with pytest.raises(DataError) as err:
        load_caiman_npz(path)
    assert not marker.exists()
    assert str(err.value).startswith(f"{path} (information.npy): refusing to unpickle builtins.eval")
    # the same file without the payload loads, sparse matrix and all
    info[()] = {"params": {"fr": 10.0}}
    np.savez(path, A=A, C=np.ones((2, 5)), information=info, dims=np.array([4, 4]))
    rec = load_caiman_npz(path)
    assert rec.A.shape == (16, 2) and rec.fs == 10.0


def test_correlates_refuses_a_crafted_ops_npy(synth_session, tmp_path):
    session = shutil.copytree(synth_session, tmp_path / "s", ignore=shutil.ignore_patterns(".cache"))
    marker = tmp_path / "marker"
    ops = np.load(session / PLANE / "ops.npy", allow_pickle=True).item()
    ops["note"] = _Payload(marker)
    arr = np.empty((), dtype=object)
    arr[()] = ops
    np.save(session / PLANE / "ops.npy", arr, allow_pickle=True)
    proc = _cli(["correlates", str(session), "--out", str(tmp_path / "out"), "--device", "cpu"], tmp_path)
    line = _one_error_line(proc.returncode, proc.stderr)
    assert f"{session / PLANE / 'ops.npy'}: refusing to unpickle builtins.eval" in line
    assert not marker.exists()
    assert not (tmp_path / "out" / "summary.json").exists()


# --------------------------------------------------------------------------------------------------
# One- and two-frame videos
# --------------------------------------------------------------------------------------------------


def _short_video(tmp_path: Path, n: int, fourcc: str, ext: str) -> tuple[Path, np.ndarray]:
    frames = np.stack([np.full((48, 64), 40 + 60 * i, np.uint8) for i in range(n)])
    frames[:, 10:20, 10:30] = 200  # some structure for the HOG
    return write_video(tmp_path / f"v{n}.{ext}", frames, fourcc=fourcc), frames


@pytest.mark.parametrize("fourcc,ext", [("MJPG", "avi"), ("mp4v", "mp4")])
def test_one_and_two_frame_videos_read_every_frame(tmp_path, fourcc, ext):
    from mouseemo.data.video import FrameCache, VideoReader

    for n in (1, 2):
        path, frames = _short_video(tmp_path, n, fourcc, ext)
        with VideoReader(path, timestamps=None) as vr:
            got = vr.read()
            assert got.shape == (n, 48, 64), n
            assert np.abs(got.astype(int) - frames).mean() < 8
            assert vr.num_frames == n
            assert [s for s, _ in vr.iter_chunks(1)] == list(range(n))
            assert len(vr.read(0, 1)) == 1  # back to the start again
            assert len(vr.read(n - 1)) == 1  # and to the last frame
        assert len(FrameCache.build(path, tmp_path / f"cache{n}.npy")) == n


@pytest.mark.parametrize("fourcc,ext", [("MJPG", "avi"), ("mp4v", "mp4")])
def test_hog_of_a_one_frame_video_has_one_row(tmp_path, fourcc, ext, capsys):
    path, _ = _short_video(tmp_path, 1, fourcc, ext)
    out = tmp_path / "x.npy"
    assert main(["hog", str(path), "--out", str(out), "--device", "cpu"]) == 0
    feats = np.load(out)
    assert feats.ndim == 2 and feats.shape[0] == 1 and feats.shape[1] > 0
    assert np.isfinite(feats).all() and feats.any()


# --------------------------------------------------------------------------------------------------
# Text files users hand in: UTF-8 with or without BOM; UTF-16 and binary refused
# --------------------------------------------------------------------------------------------------

EVENTS = "onset,duration,label,value\n0.0,1.0,neutral,\n2.0,1.0,pain,0.5\n"
BINARY = bytes(range(256)) * 4


def _encodings(text: str) -> dict[str, bytes]:
    """The bad ways to save ``text``: UTF-16 as Excel's "Unicode Text" does, and binary garbage."""
    return {"utf16": text.encode("utf-16"), "binary": BINARY}


def test_events_with_utf8_bom_are_read(tmp_path):
    from mouseemo.data.events import read_events

    path = tmp_path / "events.csv"
    path.write_bytes(b"\xef\xbb\xbf" + EVENTS.replace("\n", "\r\n").encode())
    ev = read_events(path)
    assert ev.label == ["neutral", "pain"] and ev.onset.tolist() == [0.0, 2.0]


@pytest.mark.parametrize("kind", ["utf16", "binary", "latin1"])
def test_events_that_are_not_utf8_give_one_error_naming_the_file(tmp_path, kind):
    from mouseemo.data.events import read_events

    path = tmp_path / "events.csv"
    data = {**_encodings(EVENTS), "latin1": (EVENTS + "3.0,1.0,pain,\n# caf\xe9\n").encode("latin1")}[kind]
    path.write_bytes(data)
    with pytest.raises(DataError) as err:
        read_events(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: ") and "UTF-8" in msg
    if kind == "utf16":
        assert "looks like UTF-16" in msg and "CSV UTF-8" in msg


@pytest.fixture(scope="module")
def small_session(tmp_path_factory) -> Path:
    return write_session(tmp_path_factory.mktemp("safe_text"), num_frames=60, size=(64, 64))


@pytest.mark.parametrize("command", ["prototypes", "predict"])
def test_cli_bad_events_file_is_one_line_naming_it(small_session, tmp_path, command, capsys):
    video = small_session / "face.mp4"
    protos = tmp_path / "protos.npz"
    if command == "predict":
        assert main(["prototypes", str(small_session), "--out", str(protos), "--pixels-per-cell", "16"]) == 0
    for k, (kind, data) in enumerate(_encodings(EVENTS).items()):
        events = tmp_path / f"{kind}_events.csv"
        events.write_bytes(data)
        if command == "prototypes":
            args = ["prototypes", str(video), "--events", str(events), "--out", str(tmp_path / "p2.npz")]
        else:
            args = ["predict", str(video), "--prototypes", str(protos), "--events", str(events)]
            args += ["--out", str(tmp_path / "pred"), "--device", "cpu"]
        if k == 0:  # through a real process: exit status 2, one line, no traceback
            proc = _cli(args, tmp_path)
            code, err = proc.returncode, proc.stderr
        else:
            capsys.readouterr()
            code, err = main(args), capsys.readouterr().err
        line = _one_error_line(code, err)
        assert f"{events}: not UTF-8 text" in line or f"{events}: a binary file" in line, line
        if command == "prototypes":
            assert str(video) not in line
        # predict works through a batch of videos and says which one failed: "<video>: <events>: ..."
    assert not (tmp_path / "p2.npz").exists()


def test_timestamps_accept_bom_and_refuse_utf16(tmp_path):
    from mouseemo.data.sync import read_timestamps

    text = "frame,time_s\n0,0.0\n1,0.05\n2,0.1\n"
    for name in ("face_timestamps.csv", "imaging_timestamps.csv"):
        path = tmp_path / name
        path.write_bytes(b"\xef\xbb\xbf" + text.encode())
        assert read_timestamps(path).tolist() == [0.0, 0.05, 0.1]
        for data in _encodings(text).values():
            path.write_bytes(data)
            with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: .*UTF-8"):
                read_timestamps(path)


def test_session_json_and_manifest_accept_bom_and_refuse_undecodable(tmp_path):
    from mouseemo.data.session import Session, discover_sessions

    root = tmp_path / "data"
    folder = write_session(root, num_frames=20, size=(64, 64))
    meta = folder / "session.json"
    meta.write_bytes(b"\xef\xbb\xbf" + json.dumps({"animal": "a7", "session": "s9", "fps": 20}).encode())
    assert Session.open(folder).name == "a7/s9"
    manifest = root / "manifest.csv"
    manifest.write_bytes(b"\xef\xbb\xbfanimal,session,path\nm01,s01,m01/s01\n")
    assert [s.name for s in discover_sessions(root)] == ["m01/s01"]
    for data in _encodings("animal,session,path\nm01,s01,m01/s01\n").values():
        manifest.write_bytes(data)
        with pytest.raises(DataError, match=rf"^{re.escape(str(manifest))}: .*UTF-8"):
            discover_sessions(root)
    manifest.unlink()
    for data in (json.dumps({"animal": "a\xe9"}).encode("utf-16"), b'{"animal": "caf\xe9"}', BINARY):
        meta.write_bytes(data)
        with pytest.raises(DataError, match=rf"^{re.escape(str(meta))}: .*UTF-8"):
            Session.open(folder)
    meta.write_text('["not", "an", "object"]')
    with pytest.raises(DataError, match=rf"^{re.escape(str(meta))}: expected a JSON object"):
        Session.open(folder)


def test_cli_bad_session_json_is_one_line(small_session, tmp_path):
    folder = shutil.copytree(small_session, tmp_path / "s")
    (folder / "session.json").write_bytes(json.dumps({"fps": 20}).encode("utf-16"))
    proc = _cli(["prototypes", str(folder), "--out", str(tmp_path / "p.npz")], tmp_path)
    line = _one_error_line(proc.returncode, proc.stderr)
    assert f"{folder / 'session.json'}: not UTF-8 text (looks like UTF-16)" in line


def test_traces_csv_accepts_bom(tmp_path):
    from mouseemo.inference.traces import traces_from_csv

    path = tmp_path / "face.csv"
    rows = "".join(f"{i},{i / 10:.2f},{np.sin(i):.4f}\n" for i in range(30))
    path.write_bytes(b"\xef\xbb\xbf" + ("frame,time_s,x\n" + rows).encode())
    traces = traces_from_csv(path)
    assert traces.scores.shape[0] == 30
    path.write_bytes(("frame,time_s,x\n" + rows).encode("utf-16"))
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: not UTF-8 text"):
        traces_from_csv(path)
