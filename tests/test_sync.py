"""Clock handling: timestamp files, frame problems, matching, resampling, alignment, clock fits."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mouseemo.data.clock_alignment import align_clocks, fit_clock
from mouseemo.data.sync import (
    detect_frame_problems,
    nearest_indices,
    read_timestamps,
    resample,
)
from mouseemo.errors import ConfigError, DataError


def _write_csv(path, rows, header="frame,time_s"):
    path.write_text(header + "\n" + "".join(f"{r}\n" for r in rows))
    return path


# --------------------------------------------------------------------------------------------------
# read_timestamps
# --------------------------------------------------------------------------------------------------


def test_read_timestamps_roundtrip(tmp_path):
    path = _write_csv(tmp_path / "ts.csv", [f"{i},{i * 0.05:.3f}" for i in range(5)] + [""])
    t = read_timestamps(path)
    assert t.dtype == np.float64
    np.testing.assert_allclose(t, [0.0, 0.05, 0.1, 0.15, 0.2])
    t2, frames = read_timestamps(
        _write_csv(tmp_path / "gap.csv", ["0,0.0", "1,0.05", "4,0.2"]), return_frames=True
    )
    np.testing.assert_array_equal(frames, [0, 1, 4])
    np.testing.assert_allclose(t2, [0.0, 0.05, 0.2])
    extra = _write_csv(tmp_path / "extra.csv", ["0,1.5,a", "1,1.6,b"], header=" Frame , time_s ,note")
    np.testing.assert_allclose(read_timestamps(extra), [1.5, 1.6])


@pytest.mark.parametrize(
    ("header", "rows", "match"),
    [
        ("time,frame", ["0,0.0"], "header"),
        ("frame,time_s", [], "no timestamp rows"),
        ("frame,time_s", ["0,0.0", "1,abc"], "line 3 is not numeric"),
        ("frame,time_s", ["0,0.0", "1,nan"], "line 3 has a NaN"),
        ("frame,time_s", ["0,0.0", "1,0.1", "2,0.05"], "line 4 time 0.05 s does not increase"),
        ("frame,time_s", ["0,0.0", "1,0.1", "2,0.1"], "line 4 time 0.1 s does not increase"),
        ("frame,time_s", ["0,0.0", "2,0.1", "2,0.2"], "line 4 frame 2 does not increase"),
        ("frame,time_s", ["0,0.0", "1.5,0.1"], "line 3 frame"),
        ("frame,time_s", ["0,0.0", "1"], "line 3 has 1 column"),
    ],
    ids=["header", "empty", "text", "nan", "decreasing", "equal", "frame-repeat", "frame-float", "short"],
)
def test_read_timestamps_errors_name_file_and_line(tmp_path, header, rows, match):
    path = _write_csv(tmp_path / "stamps.csv", rows, header=header)
    with pytest.raises(DataError, match=match) as info:
        read_timestamps(path)
    assert "stamps.csv" in str(info.value)


def test_read_timestamps_missing_and_lenient(tmp_path):
    with pytest.raises(DataError, match="missing.csv"):
        read_timestamps(tmp_path / "missing.csv")
    (tmp_path / "blank.csv").write_text("")
    with pytest.raises(DataError, match="empty file"):
        read_timestamps(tmp_path / "blank.csv")
    dup = _write_csv(tmp_path / "dup.csv", ["0,0.0", "1,0.1", "2,0.1"])
    np.testing.assert_allclose(read_timestamps(dup, strict=False), [0.0, 0.1, 0.1])


# --------------------------------------------------------------------------------------------------
# detect_frame_problems
# --------------------------------------------------------------------------------------------------


def test_detect_dropped_frames_exact_counts():
    fps = 20.0
    t_full = np.arange(100) / fps
    # lose frame 10 (1 missing), frames 40-42 (3 missing), frame 70 (1 missing)
    t = np.delete(t_full, [10, 40, 41, 42, 70])
    report = detect_frame_problems(t)
    assert report.nominal_fps == pytest.approx(fps)
    assert report.num_frames == 95
    assert report.num_dropped == 5
    # positions in the recorded array of the frame before each gap (frames 9, 39 and 69)
    np.testing.assert_array_equal(report.dropped_after, [9, 38, 65])
    assert report.num_duplicated == 0 and not report.ok
    assert report.jitter_ms == pytest.approx(0.0, abs=1e-6)
    assert json.loads(json.dumps(report.to_dict()))["dropped_after"] == [9, 38, 65]


def test_detect_duplicates_jitter_and_explicit_fps():
    rng = np.random.default_rng(0)
    t = np.arange(200) / 30.0 + rng.normal(0, 0.001, 200)
    t = np.sort(t)
    t = np.insert(t, 50, t[49])  # a repeated timestamp
    t = np.insert(t, 120, t[119] + 0.002)  # a nearly repeated one
    report = detect_frame_problems(t)
    assert report.num_duplicated == 2 and report.num_dropped == 0
    np.testing.assert_array_equal(report.duplicated_at, [50, 120])
    assert 0.5 < report.jitter_ms < 3.0
    # with a nominal 60 Hz, every 30 Hz interval is one missing frame
    assert detect_frame_problems(np.arange(11) / 30.0, fps=60.0).num_dropped == 10
    assert detect_frame_problems(np.arange(11) / 30.0).ok


def test_detect_frame_problems_bad_input():
    with pytest.raises(DataError, match="decreases at index 2"):
        detect_frame_problems(np.array([0.0, 1.0, 0.5]))
    with pytest.raises(DataError, match="NaN"):
        detect_frame_problems(np.array([0.0, np.nan, 1.0]))
    with pytest.raises(DataError, match="at least 2"):
        detect_frame_problems(np.array([0.0]))
    with pytest.raises(ConfigError, match="tol"):
        detect_frame_problems(np.arange(5.0), tol=1.5)


# --------------------------------------------------------------------------------------------------
# nearest_indices / resample
# --------------------------------------------------------------------------------------------------


def test_nearest_indices_ties_bounds_and_max_dist():
    t_ref = np.array([0.0, 1.0, 2.0, 3.0])
    q = np.array([-5.0, 0.4, 0.5, 0.6, 2.5, 2.9, 10.0, np.nan])
    np.testing.assert_array_equal(nearest_indices(q, t_ref), [0, 0, 0, 1, 2, 3, 3, -1])
    np.testing.assert_array_equal(nearest_indices(q, t_ref, max_dist=0.45), [-1, 0, -1, 1, -1, 3, -1, -1])
    # queries in any order and shape
    np.testing.assert_array_equal(nearest_indices(np.array([[2.2], [0.9]]), t_ref), [[2], [1]])
    with pytest.raises(DataError, match="t_ref"):
        nearest_indices(q, np.array([1.0, 0.0]))


def test_resample_linear_hand_values():
    t_src = np.array([0.0, 1.0, 2.0, 4.0])
    v = np.array([[0.0, 10.0, 20.0, 0.0], [1.0, 1.0, 1.0, 1.0]], dtype=np.float32)
    t_dst = np.array([-0.5, 0.0, 0.25, 1.5, 3.0, 4.0, 4.5])
    out = resample(v, t_src, t_dst, method="linear")
    assert out.shape == (2, 7) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], [np.nan, 0.0, 2.5, 15.0, 10.0, 0.0, np.nan])
    np.testing.assert_allclose(out[1], [np.nan, 1, 1, 1, 1, 1, np.nan])
    np.testing.assert_allclose(resample(v, t_src, t_dst, fill=-1.0)[0, [0, -1]], [-1.0, -1.0])


def test_resample_nearest_hand_values_and_axis():
    t_src = np.array([0.0, 1.0, 2.0, 3.0])
    v = np.array([5.0, 6.0, 7.0, 8.0])
    out = resample(v, t_src, np.array([0.4, 0.5, 0.6, 2.9, 3.5]), method="nearest")
    np.testing.assert_allclose(out, [5.0, 5.0, 6.0, 8.0, np.nan])
    # time on axis 0: (T, N)
    v2 = np.stack([v, 10 * v], axis=1)
    out2 = resample(v2, t_src, np.array([1.1, 2.0]), method="nearest", axis=0)
    assert out2.shape == (2, 2)
    np.testing.assert_allclose(out2, [[6.0, 60.0], [7.0, 70.0]])


def test_resample_mean_camera_to_imaging():
    # camera 20 Hz, value = frame index; imaging 15 Hz: bins centred on imaging times
    t_cam = np.arange(21) / 20.0
    v = np.arange(21, dtype=np.float64)
    # imaging 15 Hz, offset so that no bin edge falls on a camera sample
    t_neural = 0.21 + np.arange(3) * 4 / 15  # 0.21, 0.4767, 0.7433
    out = resample(v, t_cam, t_neural, method="mean")
    # edges 0.0767 | 0.3433 | 0.61 | 0.8767 -> camera frames 2..6, 7..12, 13..17
    np.testing.assert_allclose(out, [np.mean(range(2, 7)), np.mean(range(7, 13)), np.mean(range(13, 18))])
    start = resample(v, t_cam, np.array([0.0, 0.5, 1.0]), method="mean", bins="start")
    np.testing.assert_allclose(start, [np.mean(range(0, 10)), np.mean(range(10, 20)), 20.0])
    # NaN source samples are skipped, empty bins get the fill value
    v_nan = v.copy()
    v_nan[3] = np.nan
    np.testing.assert_allclose(resample(v_nan, t_cam, t_neural[:2], method="mean")[0], np.mean([2, 4, 5, 6]))
    sparse_src = np.array([0.0, 1.0])
    np.testing.assert_allclose(
        resample(np.array([1.0, 3.0]), sparse_src, np.array([0.0, 0.5, 1.0]), method="mean"),
        [1.0, np.nan, 3.0],
    )


def test_resample_rejects_bad_input():
    with pytest.raises(DataError, match="t_src has 3"):
        resample(np.zeros(4), np.arange(3.0), np.arange(3.0))
    with pytest.raises(ConfigError, match="method"):
        resample(np.zeros(3), np.arange(3.0), np.arange(3.0), method="cubic")


# --------------------------------------------------------------------------------------------------
# align_clocks / fit_clock
# --------------------------------------------------------------------------------------------------


def test_align_clocks_overlap_and_lag_shift():
    t_cam = np.arange(0, 60, 1 / 20.0)  # 0..59.95 s at 20 Hz
    t_neural = 10.0 + np.arange(0, 30, 1 / 10.0)  # 10..39.9 s at 10 Hz
    al = align_clocks(t_cam, t_neural)
    assert al.overlap_start == pytest.approx(10.0) and al.overlap_end == pytest.approx(39.9)
    assert al.num_neural == 300 and al.cam_idx[0] == 200 and al.cam_idx[-1] == 798
    np.testing.assert_array_equal(al.cam_for_neural[:3], [200, 202, 204])

    lagged = align_clocks(t_cam, t_neural, lag_s=0.25)  # 0.25 s = 5 camera frames later
    np.testing.assert_array_equal(lagged.cam_for_neural[:3], al.cam_for_neural[:3] + 5)
    np.testing.assert_allclose(lagged.t_neural[0], 10.25)
    assert lagged.to_dict()["lag_s"] == 0.25

    # a lag that pushes the end of imaging past the camera drops the imaging frames that no longer overlap
    late = align_clocks(t_cam, t_neural, lag_s=25.0)
    assert late.overlap_end == pytest.approx(t_cam[-1])
    assert late.num_neural == int(np.sum(t_neural + 25.0 <= t_cam[-1] + 1e-9))


def test_align_clocks_no_overlap_message():
    t_cam = np.linspace(0.0, 180.0, 3601)
    t_neural = np.linspace(500.0, 680.0, 2701)
    with pytest.raises(DataError, match=r"do not overlap \(camera 0\.0–180\.0 s, imaging 500\.0–680\.0 s"):
        align_clocks(t_cam, t_neural)
    # the right lag brings them together
    assert align_clocks(t_cam, t_neural, lag_s=-500.0).duration_s == pytest.approx(180.0)
    with pytest.raises(DataError, match="do not overlap"):
        align_clocks(np.arange(0, 10.0, 0.1), np.arange(9.5, 20.0, 0.1), min_overlap_s=1.0)


def test_fit_clock_recovers_drift_and_offset():
    rng = np.random.default_rng(3)
    t_a = np.sort(rng.uniform(0, 3600, 40))
    t_b = 1.0002 * t_a - 12.5 + rng.normal(0, 0.002, 40)
    slope, offset = fit_clock(t_a, t_b)
    assert slope == pytest.approx(1.0002, abs=1e-5)
    assert offset == pytest.approx(-12.5, abs=0.01)
    t_bad = t_b.copy()
    t_bad[17] += 0.5  # one event paired with the wrong pulse
    with pytest.raises(DataError, match="event 17"):
        fit_clock(t_a, t_bad)
    assert fit_clock(t_a, t_bad, max_residual_s=None)[0] == pytest.approx(1.0002, abs=1e-3)
    with pytest.raises(DataError, match="not positive"):
        fit_clock(t_a, -t_a)
    with pytest.raises(DataError, match="equal length"):
        fit_clock(t_a, t_b[:-1])
