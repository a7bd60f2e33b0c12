"""Imaging readers: Suite2p folders, TIFF stacks, ROI traces, CaImAn output, dF/F."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import tifffile

from mouseemo.data.imaging import (
    ActivityTraces,
    TiffStack,
    dff,
    extract_traces,
    load_activity,
    load_caiman_npz,
    load_suite2p,
    neuropil_masks,
    roi_masks_from_stat,
)
from mouseemo.errors import ConfigError, DataError
from tests.helpers import check_missing_and_garbage

Ly, Lx, NUM_T = 24, 32, 50


# --------------------------------------------------------------------------------------------------
# Synthetic fixtures written in the real on-disk formats
# --------------------------------------------------------------------------------------------------


def _square_roi(y0: int, x0: int, size: int = 4, lam: np.ndarray | None = None) -> dict:
    yy, xx = np.mgrid[y0 : y0 + size, x0 : x0 + size]
    ypix, xpix = yy.ravel(), xx.ravel()
    if lam is None:
        lam = np.ones(len(ypix), dtype=np.float32)
    return {
        "ypix": ypix,
        "xpix": xpix,
        "lam": lam.astype(np.float32),
        "med": [y0 + size // 2, x0 + size // 2],
        "npix": len(ypix),
    }


@pytest.fixture
def roi_world():
    """A movie whose ROI pixels carry known signals on a flat background."""
    rng = np.random.default_rng(0)
    signals = rng.uniform(100, 1000, size=(3, NUM_T)).astype(np.float32)
    stat = [
        _square_roi(2, 3),
        _square_roi(10, 20, lam=np.linspace(0.5, 2.0, 16)),
        _square_roi(17, 5, size=3),
    ]
    movie = np.full((NUM_T, Ly, Lx), 7.0, dtype=np.float32)
    for s, sig in zip(stat, signals, strict=True):
        movie[:, s["ypix"], s["xpix"]] = sig[:, None]
    return movie, stat, signals


def _write_suite2p(plane, num_rois=4, num_t=30, fs=15.0, iscell=None, F=None):
    plane.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    F = rng.uniform(50, 100, size=(num_rois, num_t)).astype(np.float32) if F is None else F
    np.save(plane / "F.npy", F)
    np.save(plane / "Fneu.npy", np.full_like(F, 20.0))
    np.save(plane / "spks.npy", np.zeros_like(F))
    if iscell is None:
        iscell = np.stack([np.arange(num_rois) % 2 == 0, np.linspace(0.1, 0.9, num_rois)], axis=1)
    np.save(plane / "iscell.npy", iscell.astype(np.float64))
    stat = np.array([_square_roi(2 * i, 2 * i, size=2) for i in range(num_rois)], dtype=object)
    np.save(plane / "stat.npy", stat, allow_pickle=True)
    ops = {"Ly": Ly, "Lx": Lx, "nframes": num_t}
    if fs is not None:
        ops["fs"] = fs
    np.save(plane / "ops.npy", np.array(ops, dtype=object), allow_pickle=True)
    return F


# --------------------------------------------------------------------------------------------------
# Suite2p
# --------------------------------------------------------------------------------------------------


def test_load_suite2p_synthetic_filters_cells_and_accepts_any_level(tmp_path):
    F = _write_suite2p(tmp_path / "sess" / "suite2p" / "plane0")
    for folder in (
        tmp_path / "sess",
        tmp_path / "sess" / "suite2p",
        tmp_path / "sess" / "suite2p" / "plane0",
    ):
        rec = load_suite2p(folder)
        np.testing.assert_array_equal(rec.neuron_ids, [0, 2])
        np.testing.assert_array_equal(rec.F, F[[0, 2]])
        assert rec.fs == 15.0 and (rec.Ly, rec.Lx) == (Ly, Lx)
        assert [s["ypix"][0] for s in rec.stat] == [0, 4]
    np.testing.assert_allclose(rec.corrected(), F[[0, 2]] - 0.7 * 20.0, rtol=1e-6)

    everything = load_suite2p(tmp_path / "sess", only_cells=False)
    assert everything.F.shape == (4, 30) and everything.iscell.tolist() == [True, False, True, False]
    by_prob = load_suite2p(tmp_path / "sess", cell_prob=0.6)
    np.testing.assert_array_equal(by_prob.neuron_ids, [2, 3])


@pytest.mark.parametrize(
    ("corrupt", "named"),
    [
        (lambda p: (p / "F.npy").unlink(), "F.npy"),
        (lambda p: np.save(p / "Fneu.npy", np.zeros((4, 29), np.float32)), "Fneu.npy"),
        (lambda p: np.save(p / "iscell.npy", np.zeros((3, 2))), "iscell.npy"),
        (
            lambda p: np.save(
                p / "stat.npy", np.array([_square_roi(0, 0)] * 3, dtype=object), allow_pickle=True
            ),
            "stat.npy",
        ),
        (lambda p: np.save(p / "spks.npy", np.full((4, 30), np.nan, np.float32)), "spks.npy"),
        (lambda p: (p / "F.npy").write_bytes(b"not a numpy file"), "F.npy"),
    ],
    ids=["missing-F", "shape-Fneu", "rows-iscell", "len-stat", "nan-spks", "corrupt-F"],
)
def test_load_suite2p_broken_inputs_name_the_file(tmp_path, corrupt, named):
    plane = tmp_path / "suite2p" / "plane0"
    _write_suite2p(plane)
    corrupt(plane)
    with pytest.raises(DataError, match=named):
        load_suite2p(plane)


def test_load_suite2p_missing_folder_and_missing_fs(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_suite2p(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no Suite2p output"):
        load_suite2p(tmp_path / "empty")
    _write_suite2p(tmp_path / "p", fs=None)
    with pytest.warns(UserWarning, match="no frame rate"):
        rec = load_suite2p(tmp_path / "p")
    assert rec.fs is None
    with pytest.raises(ConfigError, match="frame rate"):
        rec.dff()


def test_load_suite2p_real(real_data_dir):
    folder = real_data_dir / "suite2p_fissa_example" / "suite2p" / "plane0"
    with pytest.warns(UserWarning, match="fs == 1"):
        rec = load_suite2p(folder, only_cells=False)
    assert rec.F.shape == rec.Fneu.shape == rec.spks.shape == (23, 864)
    assert rec.F.dtype == np.float32 and int(rec.iscell.sum()) == 21
    assert (rec.Ly, rec.Lx) == (176, 156) and rec.fs == 1.0

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an explicit fs must silence the warning
        cells = load_suite2p(folder, fs=30.0)
    assert cells.fs == 30.0 and cells.F.shape == (21, 864)
    assert len(cells.stat) == 21 and 5 not in cells.neuron_ids.tolist()
    np.testing.assert_array_equal(cells.F, rec.F[rec.iscell])

    out = cells.dff()
    assert out.shape == (21, 864) and out.dtype == np.float32 and np.all(np.isfinite(out))
    # the 8th-percentile baseline sits near zero dF/F by construction
    assert abs(float(np.median(np.percentile(out, 8, axis=1)))) < 0.1

    masks = cells.masks()
    assert masks.shape == (21, 176 * 156)
    np.testing.assert_allclose(np.asarray(masks.sum(axis=1)).ravel(), 1.0, rtol=1e-5)


def test_load_activity_real_suite2p(real_data_dir):
    act = load_activity(real_data_dir / "suite2p_fissa_example", signal="spks", fs=10.0)
    assert isinstance(act, ActivityTraces)
    assert act.traces.shape == (21, 864) and act.fs == 10.0 and act.signal == "spks"
    np.testing.assert_allclose(act.times()[:3], [0.0, 0.1, 0.2])


def test_load_activity_session_reads_imaging_timestamps(tmp_path):
    _write_suite2p(tmp_path / "suite2p" / "plane0", num_t=30)
    (tmp_path / "imaging_timestamps.csv").write_text(
        "frame,time_s\n" + "".join(f"{i},{2.0 + i / 15:.6f}\n" for i in range(30))
    )
    act = load_activity(tmp_path, signal="corrected")
    assert act.t is not None and act.t[0] == 2.0 and act.num_frames == 30
    np.testing.assert_allclose(act.times()[1], 2.0 + 1 / 15, atol=1e-6)
    (tmp_path / "imaging_timestamps.csv").write_text("frame,time_s\n0,0.0\n1,0.1\n")
    with pytest.raises(DataError, match="imaging_timestamps.csv"):
        load_activity(tmp_path)


# --------------------------------------------------------------------------------------------------
# dF/F
# --------------------------------------------------------------------------------------------------


def test_dff_constant_baseline_and_transient():
    F = np.full((2, 200), 100.0, dtype=np.float32)
    F[0, 100] = 300.0
    Fneu = np.full_like(F, 50.0)
    out = dff(F, fs=10.0, window_s=5.0, Fneu=Fneu, neuropil_coef=0.5)
    assert out.shape == (2, 200) and out.dtype == np.float32
    # corrected = 100 - 25 = 75; transient 300 - 25 = 275 -> (275 - 75) / 75
    np.testing.assert_allclose(out[0, 100], 200.0 / 75.0, rtol=1e-6)
    np.testing.assert_allclose(out[1], 0.0, atol=1e-6)
    np.testing.assert_allclose(dff(F[0], fs=10.0, method="constant", percentile=50)[100], 2.0, rtol=1e-6)


def test_dff_maximin_tracks_slow_drift():
    t = np.arange(3000) / 10.0
    F = (100.0 + 0.2 * t)[None, :].astype(np.float32)  # slow bleaching-like drift
    out = dff(F, fs=10.0, method="maximin", window_s=30.0, sigma_s=2.0)
    # away from the edges the baseline follows the drift, so dF/F stays small
    assert np.abs(out[0, 500:-500]).max() < 0.05


def test_dff_floors_vanishing_baseline_and_rejects_bad_input():
    F = np.full((1, 100), 10.0, dtype=np.float32)
    Fneu = np.full_like(F, 14.0)  # corrected trace = 0.2 when coef 0.7 * 14 = 9.8
    with pytest.warns(UserWarning, match="floored"):
        out = dff(F, fs=10.0, Fneu=Fneu, min_baseline=1.0)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, (0.2 - 1.0) / 1.0, atol=1e-5)
    with pytest.raises(DataError, match="NaN"):
        dff(np.array([[1.0, np.nan]]), fs=1.0)
    with pytest.raises(ConfigError, match="method"):
        dff(F, fs=1.0, method="median")
    with pytest.raises(DataError, match="Fneu shape"):
        dff(F, fs=1.0, Fneu=np.ones((2, 100)))


# --------------------------------------------------------------------------------------------------
# TIFF stacks
# --------------------------------------------------------------------------------------------------


def test_tiffstack_real_imagej_lazy(real_data_dir):
    path = real_data_dir / "sima_2p_tiff" / "example.tif"
    full = tifffile.imread(path)
    with TiffStack(path) as stack:
        assert stack.shape == (20, 128, 256) and len(stack) == 20 and stack.dtype == np.uint16
        np.testing.assert_array_equal(stack[3], full[3])
        np.testing.assert_array_equal(stack[-1], full[-1])
        np.testing.assert_array_equal(stack[5:12:3], full[5:12:3])
        np.testing.assert_array_equal(stack[[7, 0, 19]], full[[7, 0, 19]])
        np.testing.assert_array_equal(stack[2:4, 10:20, 5], full[2:4, 10:20, 5])
        chunks = list(stack.iter_chunks(8))
        assert [len(c) for c in chunks] == [8, 8, 4]
        np.testing.assert_array_equal(np.concatenate(chunks), full)
        np.testing.assert_allclose(stack.mean_image(max_frames=None), full.mean(axis=0), rtol=1e-6)
        np.testing.assert_allclose(stack.mean_image(max_frames=2), full[[0, 19]].mean(axis=0), rtol=1e-6)
        with pytest.raises(IndexError):
            stack[20]
        clone = pickle.loads(pickle.dumps(stack))
    np.testing.assert_array_equal(clone[10], full[10])
    clone.close()


@pytest.mark.parametrize(
    "kwargs",
    [{"bigtiff": True}, {"imagej": True}, {"compression": "zlib"}],
    ids=["bigtiff", "imagej", "zlib"],
)
def test_tiffstack_written_formats(tmp_path, kwargs):
    movie = np.random.default_rng(2).integers(0, 4096, size=(9, 6, 7), dtype=np.uint16)
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, movie, **kwargs)
    with TiffStack(path) as stack:
        assert stack.shape == (9, 6, 7)
        np.testing.assert_array_equal(stack[2:5], movie[2:5])
        np.testing.assert_array_equal(stack[8], movie[8])
    expected_mode = "pages" if "compression" in kwargs else "memmap"
    assert stack.mode == expected_mode


def test_tiffstack_per_page_memmap(tmp_path):
    movie = np.arange(5 * 4 * 3, dtype=np.uint16).reshape(5, 4, 3)
    path = tmp_path / "pages.tif"
    with tifffile.TiffWriter(path) as tw:
        for frame in movie:  # one series per page, page headers between the image data
            tw.write(frame, contiguous=False)
    with TiffStack(path) as stack:
        assert stack.shape == (5, 4, 3) and stack.mode == "pages-memmap"
        np.testing.assert_array_equal(stack[1:4], movie[1:4])


def test_tiffstack_bad_inputs(tmp_path):
    check_missing_and_garbage(TiffStack, tmp_path, ".tif", missing="does not exist", garbage="bad.tif")
    rgb = tmp_path / "rgb.tif"
    tifffile.imwrite(rgb, np.zeros((3, 8, 8, 3), np.uint8))
    with pytest.raises(DataError, match="single-channel"):
        TiffStack(rgb)


# --------------------------------------------------------------------------------------------------
# ROI masks and traces
# --------------------------------------------------------------------------------------------------


def test_roi_masks_weighted_and_binary(roi_world):
    _, stat, _ = roi_world
    weighted = roi_masks_from_stat(stat, Ly, Lx)
    binary = roi_masks_from_stat(stat, Ly, Lx, weighted=False)
    assert sp.isspmatrix_csr(weighted) and weighted.shape == (3, Ly * Lx)
    np.testing.assert_allclose(np.asarray(weighted.sum(axis=1)).ravel(), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(binary.sum(axis=1)).ravel(), [16, 16, 9])
    # flat index is y * Lx + x
    assert weighted[0, 2 * Lx + 3] > 0 and weighted[0, 3 * Lx + 2] == 0
    lam = stat[1]["lam"]
    np.testing.assert_allclose(weighted[1, 10 * Lx + 20], lam[0] / lam.sum(), rtol=1e-6)
    with pytest.raises(DataError, match="outside"):
        roi_masks_from_stat([_square_roi(Ly - 1, 0)], Ly, Lx)


def test_extract_traces_recovers_known_signal_from_tiff(tmp_path, roi_world):
    movie, stat, signals = roi_world
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, movie, imagej=True)
    masks = roi_masks_from_stat(stat, Ly, Lx)
    with TiffStack(path) as stack:
        F = extract_traces(stack, masks, chunk_size=7)
    assert F.shape == (3, NUM_T) and F.dtype == np.float32
    np.testing.assert_allclose(F, signals, rtol=1e-5)
    F_arr = extract_traces(movie, roi_masks_from_stat(stat, Ly, Lx, weighted=False), chunk_size=1000)
    np.testing.assert_allclose(F_arr, signals, rtol=1e-5)


def test_extract_traces_with_neuropil(roi_world):
    movie, stat, signals = roi_world
    movie = movie.copy()
    movie += np.arange(NUM_T, dtype=np.float32)[:, None, None]  # background that changes in time
    signals = signals + np.arange(NUM_T, dtype=np.float32)
    npil = neuropil_masks(stat, Ly, Lx, inner_radius=1, min_pixels=40)
    roi = roi_masks_from_stat(stat, Ly, Lx, weighted=False)
    assert npil.multiply(roi).nnz == 0  # neuropil never touches a ROI pixel
    np.testing.assert_array_equal(np.diff(npil.indptr), [40, 40, 40])
    F, Fneu = extract_traces(movie, roi, neuropil=npil)
    np.testing.assert_allclose(F, signals, rtol=1e-5)
    np.testing.assert_allclose(Fneu, np.broadcast_to(7.0 + np.arange(NUM_T), (3, NUM_T)), rtol=1e-5)
    F2, Fneu2 = extract_traces(movie, roi, neuropil=True, neuropil_kw={"min_pixels": 40})
    np.testing.assert_allclose(Fneu2, Fneu, rtol=1e-5)
    with pytest.raises(DataError, match="pixels"):
        extract_traces(movie, sp.csr_matrix((3, 10)))


def test_traces_from_real_tiff_with_roi_masks(real_data_dir):
    path = real_data_dir / "sima_2p_tiff" / "example.tif"
    full = tifffile.imread(path).astype(np.float64)
    stat = [_square_roi(40, 60, size=6), _square_roi(90, 200, size=5)]
    with TiffStack(path) as stack:
        F = extract_traces(stack, roi_masks_from_stat(stat, stack.Ly, stack.Lx), chunk_size=6)
    expected = np.stack([full[:, s["ypix"], s["xpix"]].mean(axis=1) for s in stat])
    np.testing.assert_allclose(F, expected, rtol=1e-5)
    act = load_activity(path, signal="F", stat=stat, fs=30.0)
    np.testing.assert_allclose(act.traces, expected, rtol=1e-5)


def test_real_suite2p_stored_neuropil_masks(real_data_dir):
    rec = load_suite2p(real_data_dir / "suite2p_fissa_example", fs=10.0)
    stored = neuropil_masks(rec.stat, rec.Ly, rec.Lx)
    built = neuropil_masks(rec.stat, rec.Ly, rec.Lx, use_stored=False)
    assert stored.shape == built.shape == (21, 176 * 156)
    assert np.diff(stored.indptr)[0] == len(rec.stat[0]["neuropil_mask"])
    # both kinds of mask surround the same ROI: their centres are close
    for masks in (stored, built):
        y, x = np.divmod(masks[0].indices, rec.Lx)
        assert abs(y.mean() - rec.stat[0]["med"][0]) < 5 and abs(x.mean() - rec.stat[0]["med"][1]) < 5


# --------------------------------------------------------------------------------------------------
# CaImAn
# --------------------------------------------------------------------------------------------------


def test_caiman_real(real_data_dir):
    path = real_data_dir / "caiman_cnmf_demo" / "groundtruth_demoMovie.npz"
    rec = load_caiman_npz(path)
    assert rec.C.shape == (16, 2000) and rec.C.dtype == np.float32
    assert rec.A.shape == (4800, 16) and sp.issparse(rec.A)
    assert rec.Ly is None and rec.Lx is None  # the file does not store the frame size
    assert rec.to_activity().traces.shape == (16, 2000)
    with pytest.raises(ConfigError, match="signal"):
        rec.to_activity("dff")
    shaped = load_caiman_npz(path, dims=(60, 80))
    fp = shaped.footprints()
    assert fp.shape == (16, 60, 80)
    # Fortran pixel order gives compact footprints; a wrong order would smear each one out
    ys, xs = np.nonzero(fp[0] > 0.2 * fp[0].max())
    assert np.std(ys) + np.std(xs) < 10
    with pytest.raises(DataError, match="dims"):
        load_caiman_npz(path, dims=(50, 80))


def test_caiman_synthetic_and_broken(tmp_path):
    A = sp.random(12, 3, density=0.5, random_state=0, format="coo")
    C = np.arange(30, dtype=np.float64).reshape(3, 10)
    good = tmp_path / "cnmf.npz"
    np.savez(good, A=np.array(A, dtype=object), C=C, dims=np.array([3, 4]))
    rec = load_caiman_npz(good)
    assert (rec.Ly, rec.Lx) == (3, 4)
    np.testing.assert_array_equal(rec.C, C)
    act = load_activity(good, signal="F", fs=5.0)
    assert act.fs == 5.0 and act.traces.shape == (3, 10)
    bad = tmp_path / "bad.npz"
    np.savez(bad, A=np.array(A, dtype=object), C=C[:2])
    with pytest.raises(DataError, match="bad.npz"):
        load_caiman_npz(bad)
    nokey = tmp_path / "nokey.npz"
    np.savez(nokey, C=C)
    with pytest.raises(DataError, match="nokey.npz.*'A'"):
        load_caiman_npz(nokey)


def test_load_activity_rejects_unknown(tmp_path):
    other = tmp_path / "x.csv"
    other.write_text("a")
    with pytest.raises(DataError, match="x.csv"):
        load_activity(other)
    with pytest.raises(ConfigError, match="signal"):
        load_activity(tmp_path, signal="raw")
