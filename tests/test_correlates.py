"""Neuron–expression correlates: statistics, the unmixing op, the command on a synthetic session
(against its ground truth), bad input, and the neural side on a real Suite2p folder."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter1d

from mouseemo.analysis.correlates import correlate_neurons, traces_on_imaging_clock
from mouseemo.analysis.correlates_stats import benjamini_hochberg, circular_crosscorrelation
from mouseemo.cli import main
from mouseemo.errors import ConfigError, DataError
from mouseemo.ops.similarity import expression_intensity

FS = 15.0
REPO = Path(__file__).resolve().parents[1]


def _smooth_noise(rng, shape, sigma):
    return gaussian_filter1d(rng.standard_normal(shape), sigma, axis=-1, mode="wrap")


# --------------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------------


def test_benjamini_hochberg_matches_definition():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=40) ** 2
    q = benjamini_hochberg(p)
    m = len(p)
    order = np.argsort(p)
    expected = np.empty(m)
    for rank, i in enumerate(order, start=1):
        expected[i] = min(1.0, min(p[order[j - 1]] * m / j for j in range(rank, m + 1)))
    np.testing.assert_allclose(q, expected)
    assert np.all(q >= p)
    with_nan = benjamini_hochberg(np.array([0.01, np.nan, 0.02]))
    assert np.isnan(with_nan[1]) and with_nan[0] == pytest.approx(0.02)  # NaN is not a test
    with pytest.raises(ValueError):
        benjamini_hochberg(np.array([0.5, 1.5]))


def test_circular_crosscorrelation_is_pearson_at_every_shift():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((3, 200)), rng.standard_normal((2, 200))
    cc = circular_crosscorrelation(x, y)
    assert cc.shape == (3, 2, 200)
    for n, k, s in [(0, 0, 0), (1, 1, 17), (2, 0, 199)]:
        ref = np.corrcoef(y[k], np.roll(x[n], -s))[0, 1]  # x[(t + s) mod T]
        assert cc[n, k, s] == pytest.approx(ref, abs=1e-10)
    flat = circular_crosscorrelation(np.ones((1, 200)), y)
    assert np.all(flat == 0)


def test_planted_neurons_are_found_with_their_emotion_and_lag():
    rng = np.random.default_rng(2)
    num_t = 3000
    traces = np.clip(_smooth_noise(rng, (3, num_t), 12), 0, None)
    act = _smooth_noise(rng, (60, num_t), 3)
    lag = 6  # samples: the neurons follow the face by 0.4 s
    for n in range(12):
        act[n] += 1.5 * np.roll(traces[n % 3], lag) / traces[n % 3].std()
    res = correlate_neurons(
        act, traces, FS, names=["a", "b", "c"], lags_s=np.arange(0, 1.01, 0.2), num_shifts=1000
    )
    assert res.significant[:12].all()
    assert res.significant[12:].sum() <= 3
    assert res.preferred[:12] == ["a", "b", "c"] * 4
    np.testing.assert_allclose(res.lag_best[:12], lag / FS, atol=1e-9)
    assert set(res.preferred[12:]) <= {"a", "b", "c", "none"}
    assert len(res.shifts_s) == 1000 and res.shifts_s.min() > 0
    counts = res.counts()
    assert sum(counts.values()) == 60 and counts["none"] == 60 - res.significant.sum()
    header, rows = res.rows()
    assert header[:7] == ["neuron", "preferred", "r", "lag_s", "p", "q", "significant"]
    assert rows[0][1] == "a" and rows[0][6] == 1


def test_null_is_calibrated_for_autocorrelated_independent_signals():
    """Independent smooth signals: about alpha of the pairs (pair test) and of the neurons (neuron
    test, min-p over every trace) have p < alpha."""
    rng = np.random.default_rng(3)
    act = _smooth_noise(rng, (400, 3000), 5)
    traces = _smooth_noise(rng, (6, 3000), 10)
    pairs = correlate_neurons(act, traces, FS, num_shifts=1000)
    assert pairs.test == "pairs"
    assert 0.02 < np.mean(pairs.p_pair < 0.05) < 0.085
    assert 0.02 < np.mean(pairs.p_shift < 0.05) < 0.085
    assert pairs.significant.sum() <= 4  # FDR: almost nothing survives when nothing is there
    with pytest.warns(UserWarning, match="too short for the 'neurons' test"):  # 1000 shifts, 400 neurons
        neurons = correlate_neurons(act, traces, FS, num_shifts=1000, test="neurons")
    assert 0.02 < np.mean(neurons.p < 0.05) < 0.085
    np.testing.assert_array_equal(neurons.p_pair, pairs.p_shift)
    assert neurons.significant.sum() <= 4


def _sparse_world(seed, minutes, num_tuned=40, num_untuned=160, k=4):
    """Face traces of a few decaying expression bouts each, and calcium of Poisson neurons: the first
    ``num_tuned`` fire with one trace (``k`` emotions in turn), the rest are untuned."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    num_t = int(minutes * 60 * FS)
    traces = np.zeros((k, num_t))
    for j in range(k):
        for on in rng.choice(num_t - 60, size=max(2, int(minutes)), replace=False):
            traces[j, on : on + int(rng.uniform(2, 6) * FS)] += rng.uniform(0.5, 1.0)
        traces[j] = lfilter([1.0], [1.0, -np.exp(-1 / (1.5 * FS))], traces[j])
    tuned = np.concatenate([np.arange(num_tuned) % k, np.full(num_untuned, -1)])
    rate = np.exp(rng.normal(np.log(0.5), 0.6, len(tuned)))[:, None] * np.ones((1, num_t))
    for i in np.flatnonzero(tuned >= 0):
        rate[i] += rng.uniform(2.0, 6.0) * traces[tuned[i]] / traces[tuned[i]].max()
    calcium = lfilter([1.0], [1.0, -np.exp(-1 / (0.7 * FS))], rng.poisson(rate / FS), axis=1)
    return calcium + 0.3 * rng.standard_normal(calcium.shape), traces, tuned


def test_pair_test_is_calibrated_on_untuned_neurons_and_finds_the_tuned_ones():
    """Sparse calcium against sparse expression bouts, 3 minutes: the pair test's p-values of untuned
    neurons are uniform down to the tail BH uses (p < 0.01), its FPR on them is below alpha, and it
    finds the tuned neurons that the exact per-neuron test cannot resolve in 3 minutes.

    The same criterion rejects two tests known to be too liberal (a Gaussian tail on the
    standardised correlation, and a 10 s minimum shift), so it can fail."""
    from scipy.stats import norm

    alpha = 0.05
    frac = {"pairs": [], "gaussian": [], "min_shift": []}
    fpr, recall, recall_neurons = [], [], []
    for seed in (0, 1):
        act, traces, tuned = _sparse_world(seed, 3.0)
        untuned = tuned < 0
        res = correlate_neurons(act, traces, FS, lags_s=[0.5])
        frac["pairs"].append(res.p_pair[untuned])
        frac["gaussian"].append(norm.sf(res.z[untuned]))
        far = correlate_neurons(act, traces, FS, lags_s=[0.5], min_shift_s=10.0)
        frac["min_shift"].append(far.p_pair[untuned])
        fpr.append(res.significant[untuned].mean())
        recall.append(res.significant[~untuned].mean())
        found = res.significant & ~untuned
        assert [res.preferred[i] for i in np.flatnonzero(found)] == [f"trace{j}" for j in tuned[found]]
        with pytest.warns(UserWarning, match="smallest achievable p-value"):
            neurons = correlate_neurons(act, traces, FS, lags_s=[0.5], test="neurons")
        recall_neurons.append(neurons.significant[~untuned].mean())

    def calibrated(p):
        p = np.concatenate([v.ravel() for v in p])
        return np.mean(p < 0.05) <= 0.06 and np.mean(p < 0.01) <= 0.014

    assert calibrated(frac["pairs"])
    assert np.mean(np.concatenate(frac["pairs"]) < 0.05) > 0.03  # not conservative either
    assert not calibrated(frac["gaussian"]) and not calibrated(frac["min_shift"])
    assert max(fpr) <= alpha
    assert min(recall) >= 0.8 > max(recall_neurons) + 0.3


@pytest.fixture(scope="module")
def population_pvalues():
    """The default test's pair p-values on each calibration population, with what they came from."""
    from mouseemo.analysis.correlates_sim import POPULATIONS, calibration_recording

    out = {}
    for population in POPULATIONS:
        runs = []
        for seed in range(3):
            act, traces, tuned = calibration_recording(
                population, seed, minutes=3.0, num_untuned=100, num_background=80, num_tuned=24
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                runs.append((correlate_neurons(act, traces, FS, lags_s=[0.5]), tuned))
        out[population] = runs
    return out


@pytest.mark.parametrize("population", ["gaussian", "sparse", "bursty", "mixed_rates", "drift", "short_dff"])
def test_pair_null_is_calibrated_on_realistic_untuned_neurons(population, population_pvalues):
    """Untuned neurons of one population (sparse, bursty, mixed rates, drifting, or a short session
    whose dF/F window spans it) recorded beside tuned neurons and a busy background: their pair
    p-values fall below 0.01 and 0.05 no more often than a calibrated null allows (the upper 99 %
    quantile of the binomial: the seeds are fixed, and pairs that share a face trace are not quite
    independent draws). A null pooled over every pair of an emotion fails this on bursty neurons and
    short sessions, whose shift null has a heavier tail than the busy neurons' that dominate the pool;
    without the slow baseline taken off, the drift's step where a shifted recording wraps fails it."""
    from scipy.stats import binom

    runs = population_pvalues[population]
    p = np.concatenate([res.p_pair[tuned == -1].ravel() for res, tuned in runs])
    for a in (0.01, 0.05):
        assert np.mean(p < a) <= binom.ppf(0.99, len(p), a) / len(p), (population, a, np.mean(p < a))
    assert np.mean(p < 0.05) > 0.03  # not conservative either
    untuned = np.concatenate([res.significant[tuned == -1] for res, tuned in runs])
    assert untuned.mean() <= 0.02
    # the tuned neurons of the same recordings are found (3 minutes: not all), with their own emotion
    is_tuned = np.concatenate([tuned >= 0 for _, tuned in runs])
    assert np.concatenate([res.significant for res, _ in runs])[is_tuned].mean() >= 0.4
    agree = [
        res.preferred[i] == f"trace{tuned[i]}"
        for res, tuned in runs
        for i in np.flatnonzero(res.significant & (tuned >= 0))
    ]
    assert np.mean(agree) >= 0.9


def test_calibration_populations_are_what_they_say():
    """The generator's populations: sparse and bursty neurons are rare-event and skewed, the drift is
    slow, and the short session's dF/F baseline window covers the whole recording."""
    from scipy.stats import skew

    from mouseemo.analysis.correlates_sim import SHORT_MINUTES, calibration_recording

    sk = {}
    for population in ("gaussian", "sparse", "bursty", "mixed_rates", "drift", "short_dff"):
        act, traces, tuned = calibration_recording(
            population, 0, num_untuned=40, num_background=10, num_tuned=6
        )
        assert act.shape[0] == 56 and traces.shape == (6, act.shape[1]) and np.isfinite(act).all()
        assert (traces >= 0).all() and (tuned == -1).sum() == 40 and (tuned == -2).sum() == 10
        sk[population] = np.percentile(skew(act[tuned == -1], axis=1), [10, 50, 90])
        assert np.median(skew(act[tuned == -2], axis=1)) < 1  # the busy background
        if population == "drift":  # most of the variance is slower than 10 s
            slow = gaussian_filter1d(act[tuned == -1], 10 * FS, axis=1)
            assert np.median(slow.var(axis=1) / act[tuned == -1].var(axis=1)) > 0.5
    assert act.shape[1] == SHORT_MINUTES * 60 * FS  # short_dff: shorter than dF/F's window
    assert (
        abs(sk["gaussian"][1]) < 0.3
        and sk["sparse"][1] > 2
        and sk["bursty"][1] > 4
        and sk["short_dff"][1] > 1.5
    )
    assert sk["mixed_rates"][2] - sk["mixed_rates"][0] > 3  # rare and busy neurons side by side
    with pytest.raises(ConfigError, match="`population`"):
        calibration_recording("poisson", 0)


def test_two_sided_finds_suppressed_neurons():
    rng = np.random.default_rng(4)
    trace = np.clip(_smooth_noise(rng, (1, 3000), 12), 0, None)
    act = _smooth_noise(rng, (10, 3000), 3)
    act[0] -= 2.0 * trace[0] / trace[0].std()
    one = correlate_neurons(act, trace, FS, names=["x"], tail="greater")
    two = correlate_neurons(act, trace, FS, names=["x"], tail="two-sided")
    assert not one.significant[0] and two.significant[0] and two.r_best[0] < -0.3


def test_correlate_bad_input():
    rng = np.random.default_rng(5)
    act, tr = rng.standard_normal((4, 600)), rng.standard_normal((2, 600))
    bad = act.copy()
    bad[2, 100] = np.nan
    with pytest.raises(DataError, match="neuron 2 at sample 100"):
        correlate_neurons(bad, tr, FS)
    with pytest.raises(DataError, match="not on one clock"):
        correlate_neurons(act, tr[:, :500], FS)
    with pytest.raises(DataError, match="too short"):
        correlate_neurons(act[:, :200], tr[:, :200], FS, min_shift_s=10.0)
    with pytest.raises(ConfigError, match="tail"):
        correlate_neurons(act, tr, FS, tail="less")
    with pytest.raises(ConfigError, match="test"):
        correlate_neurons(act, tr, FS, test="trials")
    with pytest.warns(UserWarning, match="only"):
        res = correlate_neurons(act, tr, FS, num_shifts=1000)  # 40 s at 15 Hz: fewer shifts than asked
    assert len(res.shifts_s) == 599
    assert len(correlate_neurons(act, tr, FS, min_shift_s=10.0).shifts_s) == 600 - 2 * 150 + 1


def test_short_session_warns_with_the_smallest_achievable_p_value():
    rng = np.random.default_rng(7)
    act, tr = _smooth_noise(rng, (200, 1800), 3), _smooth_noise(rng, (6, 1800), 10)
    # 2 minutes: the exact neuron test resolves p >= 1/1800, above alpha / 200 neurons
    with pytest.warns(UserWarning, match=r"'neurons' test: its smallest achievable p-value is 0\.00056"):
        correlate_neurons(act, tr, FS, test="neurons")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        correlate_neurons(act, tr, FS)  # the pair test's pooled null resolves far smaller p-values
    # one neuron, one trace, 1 s: 14 shifts, p >= 1/15 > alpha
    with pytest.warns(UserWarning, match=r"'pairs' test: its smallest achievable p-value is 0\.067"):
        correlate_neurons(act[:1, :15], tr[:1, :15], FS)


def test_traces_on_imaging_clock_bins_and_errors():
    t_cam = np.arange(2000) / 20.0
    t_cam = np.delete(t_cam, [500, 501, 502])  # dropped camera frames
    scores = np.stack([np.sin(t_cam), t_cam], axis=1)
    t_img = 2.0 + np.arange(1000) / 15.0
    tr, align = traces_on_imaging_clock(scores, t_cam, t_img)
    assert tr.shape == (2, align.num_neural) and np.isfinite(tr).all()
    np.testing.assert_allclose(tr[1], align.t_neural, atol=0.03)  # a bin mean of t is about t
    with pytest.raises(DataError, match="do not overlap"):
        traces_on_imaging_clock(scores, t_cam, t_img + 1000.0)


# --------------------------------------------------------------------------------------------------
# Unmixing faces into prototypical expressions
# --------------------------------------------------------------------------------------------------


def test_expression_intensity_is_nonnegative_least_squares():
    from scipy.optimize import nnls

    rng = np.random.default_rng(6)
    protos = rng.uniform(size=(5, 40))
    protos[2] = 0.6 * protos[1] + 0.4 * protos[3]  # collinear-ish expressions, as real prototypes are
    protos[2] += 0.05 * rng.uniform(size=40)
    feats = (
        protos[0]
        + rng.uniform(0, 1, (30, 4)) @ (protos[1:] - protos[0])
        + 0.02 * rng.standard_normal((30, 40))
    )
    feats[:3] = protos[0] - 0.3 * (protos[1] - protos[0])  # "anti" expressions clip at 0
    got = expression_intensity(feats, protos, neutral_index=0)
    D = (protos[1:] - protos[0]).T
    ref = np.stack([nnls(D, f - protos[0])[0] for f in feats])
    np.testing.assert_allclose(got, ref, atol=1e-6)
    assert got.dtype == np.float64 and (got >= 0).all()
    t = expression_intensity(torch.as_tensor(feats, dtype=torch.float32), torch.as_tensor(protos))
    assert t.dtype == torch.float32 and t.shape == (30, 4)
    np.testing.assert_allclose(t.numpy(), ref, atol=1e-4)
    other = expression_intensity(feats, protos[[1, 0, 2, 3, 4]], neutral_index=1)
    np.testing.assert_allclose(other, got, atol=1e-8)
    with pytest.raises(ValueError, match="equals the neutral"):
        expression_intensity(feats, np.stack([protos[0], protos[0], protos[1]]))
    with pytest.raises(ValueError, match="same D"):
        expression_intensity(feats[:, :10], protos)


# --------------------------------------------------------------------------------------------------
# The command on a synthetic session, against its ground truth
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """A 6-minute synthetic session (fixed seed): 176 cells, 4-5 trials of most emotions."""
    from mouseemo.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("corr")
    return generate_dataset(root, num_mice=1, minutes=6.0, seed=0, size=(72, 96), workers=1)[0]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A short session for the mechanics and the bad-input cases."""
    from mouseemo.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("corr_small")
    sessions = generate_dataset(
        root, num_mice=1, minutes=1.5, seed=1, size=(64, 80), num_neurons=50, workers=1
    )
    return sessions[0]


@pytest.fixture(scope="module")
def result(session, tmp_path_factory):
    out = tmp_path_factory.mktemp("corr_out")
    code = main(["correlates", str(session), "--out", str(out), "--pixels-per-cell", "8", "--device", "cpu"])
    assert code == 0
    return out


def test_correlates_finds_the_selective_neurons(result):
    summary = json.loads((result / "summary.json").read_text())
    truth = summary["truth"]
    assert truth["precision"] >= 0.8, truth
    assert truth["recall"] >= 0.6, truth
    assert truth["agreement"] >= 0.8, truth
    # untuned cells are rarely called significant (the FDR is 5% of the discoveries)
    none = truth["per_truth_class"]["none"]
    assert none["significant"] <= 0.1 * none["neurons"]
    assert summary["face"]["kind"] == "intensity" and summary["lags_s"] == pytest.approx([0.5], abs=0.07)
    assert summary["num_shifts"] == summary["alignment"]["num_neural"] - 1  # every shift: exact
    fr = summary["fraction_per_emotion"]
    assert set(fr) == {"pleasure", "disgust", "malaise", "pain", "passive_fear", "active_fear", "none"}
    assert sum(fr.values()) == pytest.approx(1.0)
    assert summary["alignment"]["num_neural"] > 5000


def test_correlates_outputs(result, session):
    with open(result / "neurons.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {"neuron", "preferred", "r", "p", "q", "significant"} <= set(rows[0])
    iscell = np.load(session / "suite2p" / "plane0" / "iscell.npy")
    assert [int(r["neuron"]) for r in rows] == np.flatnonzero(iscell[:, 0] > 0.5).tolist()
    for r in rows:
        assert (r["preferred"] == "none") == (r["significant"] == "0")
        assert (float(r["q"]) < 0.05) == (r["significant"] == "1")
        assert 0 < float(r["p"]) <= float(r["q"]) + 1e-12 <= 1 + 1e-12
    with np.load(result / "traces.npz", allow_pickle=False) as z:
        assert z["traces"].shape == (6, len(z["t"])) and z["names"][0] == "pleasure"
    for name in ("responses.png", "examples.png"):
        assert (result / name).stat().st_size > 10_000
    assert not list(result.glob(".*tmp*"))  # no temporary file left behind


def test_existing_outputs_are_not_overwritten(result, session, capsys):
    before = (result / "summary.json").read_bytes()
    assert main(["correlates", str(session), "--out", str(result)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (result / "summary.json").read_bytes() == before


def test_similarity_traces_and_lag_sweep_run(small, tmp_path):
    code = main(["correlates", str(small), "--out", str(tmp_path), "--trace", "similarity",
                 "--pixels-per-cell", "8", "--lag-sweep", "0,0.6,0.2", "--shifts", "1000", "--no-plot",
                 "--include-neutral"])  # fmt: skip
    assert code == 0
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["face"]["kind"] == "similarity" and s["face"]["names"][0] == "neutral"
    assert s["lags_s"] == pytest.approx([0.0, 0.2, 0.4, 0.6], abs=0.04) and s["num_shifts"] == 1000
    assert len(s["fraction_per_emotion"]) == 8  # 7 prototypes + none
    assert not (tmp_path / "responses.png").exists()


def test_traces_csv_from_predict(small, tmp_path):
    """`mouseemo predict` output (similarity_<name> columns) goes straight into --traces, and gives
    the same correlations as the built-in similarity traces."""
    assert main(["prototypes", str(small), "--out", str(tmp_path / "p.npz"), "--pixels-per-cell", "8"]) == 0
    assert main(["predict", str(small), "--prototypes", str(tmp_path / "p.npz"), "--out",
                 str(tmp_path / "pred"), "--no-plot"]) == 0  # fmt: skip
    csv_path = next((tmp_path / "pred").glob("*.csv"))
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["correlates", str(small), "--out", str(a), "--traces", str(csv_path), "--no-plot"]) == 0
    assert main(["correlates", str(small), "--out", str(b), "--prototypes", str(tmp_path / "p.npz"),
                 "--trace", "similarity", "--no-plot"]) == 0  # fmt: skip
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    assert sa["face"]["kind"] == "csv" and "neutral" not in sa["face"]["names"]
    assert sa["face"]["names"] == sb["face"]["names"]
    with open(a / "neurons.csv") as fa, open(b / "neurons.csv") as fb:
        ra, rb = list(csv.DictReader(fa)), list(csv.DictReader(fb))
    r_a = np.array([float(r["r_pleasure"]) for r in ra])
    r_b = np.array([float(r["r_pleasure"]) for r in rb])
    np.testing.assert_allclose(r_a, r_b, atol=1e-3)  # the CSV rounds similarities to 6 digits


# --------------------------------------------------------------------------------------------------
# Bad input through the command line: one line, exit status 2
# --------------------------------------------------------------------------------------------------


def _cli(args, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout's mouseemo, wherever pytest runs
    return subprocess.run(
        [sys.executable, "-m", "mouseemo", "correlates", *args], capture_output=True, text=True, cwd=tmp_path,
        timeout=300, env=env,
    )  # fmt: skip


def _copy_session(session, dst):
    shutil.copytree(session, dst, ignore=shutil.ignore_patterns(".cache"))
    return dst


def _traces_csv(session, path):
    t = np.loadtxt(session / "face_timestamps.csv", delimiter=",", skiprows=1)[:, 1]
    rng = np.random.default_rng(0)
    vals = gaussian_filter1d(rng.standard_normal(len(t)), 10)
    path.write_text("time_s,x\n" + "".join(f"{a:.6f},{b:.6f}\n" for a, b in zip(t, vals)))
    return path


def test_bad_input_is_one_clear_line(small, tmp_path, capsys):
    session = small
    traces = _traces_csv(session, tmp_path / "t.csv")
    cases = []
    # imaging clock that does not overlap the camera's
    s1 = _copy_session(session, tmp_path / "late")
    t = np.loadtxt(s1 / "imaging_timestamps.csv", delimiter=",", skiprows=1)
    (s1 / "imaging_timestamps.csv").write_text(
        "frame,time_s\n" + "".join(f"{int(f)},{ti + 5000:.6f}\n" for f, ti in t)
    )
    cases.append((s1, "do not overlap"))
    # a Suite2p folder where no ROI is a cell
    s2 = _copy_session(session, tmp_path / "nocells")
    iscell = np.load(s2 / "suite2p/plane0/iscell.npy")
    iscell[:, 0] = 0
    np.save(s2 / "suite2p/plane0/iscell.npy", iscell)
    cases.append((s2, "no ROI is labelled a cell"))
    # NaN in the fluorescence
    s3 = _copy_session(session, tmp_path / "nan")
    F = np.load(s3 / "suite2p/plane0/F.npy")
    F[4, 10] = np.nan
    np.save(s3 / "suite2p/plane0/F.npy", F)
    cases.append((s3, "F.npy: contains NaN"))
    # timestamps that do not match the imaging frames
    s4 = _copy_session(session, tmp_path / "short")
    lines = (s4 / "imaging_timestamps.csv").read_text().splitlines()
    (s4 / "imaging_timestamps.csv").write_text("\n".join(lines[:-5]) + "\n")
    cases.append((s4, "timestamps but Suite2p has"))
    # no Suite2p output at all
    s5 = _copy_session(session, tmp_path / "nos2p")
    shutil.rmtree(s5 / "suite2p")
    cases.append((s5, "no Suite2p output found"))
    for k, (folder, message) in enumerate(cases):
        args = [str(folder), "--out", str(tmp_path / f"out_{folder.name}"), "--traces", str(traces)]
        if k == 0:  # one through a real process: exit status 2, one line, no traceback
            proc = _cli(args, tmp_path)
            code, err = proc.returncode, proc.stderr
            assert "Traceback" not in err
        else:
            capsys.readouterr()
            code, err = main(["correlates", *args]), capsys.readouterr().err
        last = err.strip().splitlines()[-1]
        assert code == 2 and last.startswith("mouseemo: error:"), err[-800:]
        assert message in last, (folder.name, last)
        assert not (tmp_path / f"out_{folder.name}" / "summary.json").exists()
    # a traces file with NaN, and a missing one
    bad = tmp_path / "bad.csv"
    rows = traces.read_text().splitlines()
    rows[50] = rows[50].split(",")[0] + ",nan"
    bad.write_text("\n".join(rows) + "\n")
    for tr, message in ((bad, "NaN or inf in column 'x' at line 51"), (tmp_path / "none.csv", "not found")):
        capsys.readouterr()
        assert main(["correlates", str(session), "--out", str(tmp_path / "o"), "--traces", str(tr)]) == 2
        assert message in capsys.readouterr().err.strip().splitlines()[-1]


# --------------------------------------------------------------------------------------------------
# Real data: the neural side on a real Suite2p folder (no face video exists for it)
# --------------------------------------------------------------------------------------------------


def test_real_suite2p_against_provided_traces(real_data_dir, tmp_path):
    """A real Suite2p folder (21 cells x 864 frames) against traces given on its own clock.

    There is no face video, so prototypes, checkpoints and the camera/imaging alignment cannot be
    tried on it; what can: the reader, dF/F, the correlation, the lag, the circular-shift null and the
    FDR. The folder's frame rate is not recorded (ops fs = 1), so 10 Hz is assumed. One trace is
    ROI 7's activity 0.5 s earlier (the face leads, as the lag sweep assumes) buried in noise as
    large as itself; twelve are face-like epochs unrelated to the neurons, against which the real
    neurons' p-values must be no smaller than chance allows.
    """
    from scipy.stats import binom

    from mouseemo.analysis.correlates_run import session_activity
    from mouseemo.analysis.correlates_sim import face_epochs

    folder = real_data_dir / "suite2p_fissa_example"
    act = session_activity(folder, fs=10.0)
    assert act.traces.shape == (21, 864) and np.isfinite(act.traces).all()
    rng = np.random.default_rng(0)
    t = np.arange(864) / 10.0
    roi = act.traces[7] - act.traces[7].mean()
    lead = np.roll(roi, -5) + roi.std() * gaussian_filter1d(rng.standard_normal(864), 1.0) * 2.0
    unrelated = face_epochs(rng, 864, 10.0, k=12)
    names = ["lead"] + [f"u{j}" for j in range(12)]
    path = tmp_path / "behaviour.csv"
    cols = np.vstack([lead, unrelated]).T
    path.write_text(
        "time_s,"
        + ",".join(names)
        + "\n"
        + "".join(f"{a:.3f}," + ",".join(f"{v:.6f}" for v in row) + "\n" for a, row in zip(t, cols))
    )
    out = tmp_path / "out"
    assert main(["correlates", str(folder), "--out", str(out), "--traces", str(path), "--imaging-fs", "10",
                 "--lag-sweep=-1,1,0.1"]) == 0  # fmt: skip
    with open(out / "neurons.csv", newline="") as fh:
        rows = {int(r["neuron"]): r for r in csv.DictReader(fh)}
    roi7 = int(act.neuron_ids[7])
    assert rows[roi7]["preferred"] == "lead" and rows[roi7]["significant"] == "1"
    assert float(rows[roi7]["lag_s"]) == pytest.approx(0.5, abs=0.05)  # neural activity follows the face
    assert 0.2 < float(rows[roi7]["r_lead"]) < 0.8  # the noise is really there
    p_unrelated = np.array([[float(r[f"p_u{j}"]) for j in range(12)] for r in rows.values()]).ravel()
    for a in (0.01, 0.05):
        assert np.mean(p_unrelated < a) <= binom.ppf(0.95, len(p_unrelated), a) / len(p_unrelated)
    assert sum(r["significant"] == "1" and r["preferred"] != "lead" for r in rows.values()) <= 1
    s = json.loads((out / "summary.json").read_text())
    assert s["num_neurons"] == 21 and s["imaging_fs"] == pytest.approx(10.0)
    assert s["num_shifts"] == 863 and len(s["lags_s"]) == 21  # every shift, every lag
    assert "truth" not in s


# --------------------------------------------------------------------------------------------------
# One dF/F convention: correlates, the joint datamodule and embed compute the same activity
# --------------------------------------------------------------------------------------------------


def test_one_dff_convention_in_correlates_joint_data_and_embed(small, tmp_path, monkeypatch):
    import inspect
    from types import SimpleNamespace

    import yaml

    from mouseemo.analysis.correlates_run import analyse_session, session_activity
    from mouseemo.cli import build_parser
    from mouseemo.data.face_datamodule import SessionFrames
    from mouseemo.data.imaging import DFF_WINDOW_S, dff
    from mouseemo.data.neural_datamodule import FaceNeuralDataModule, activity_on_camera_clock
    from mouseemo.data.session import Session
    from mouseemo.data.sync import resample
    from mouseemo.inference import embed
    from mouseemo.models.joint_module import DATA_KEYS

    # one default, everywhere it can be set
    for fn in (dff, session_activity, analyse_session, activity_on_camera_clock, FaceNeuralDataModule):
        params = inspect.signature(fn).parameters
        assert params["window_s" if fn is dff else "dff_window_s"].default == DFF_WINDOW_S, fn
    conf = yaml.safe_load((REPO / "conf" / "data" / "neural.yaml").read_text())
    assert conf["dff_window_s"] == DFF_WINDOW_S and "dff_window_s" in DATA_KEYS
    args = build_parser().parse_args(["correlates", str(small), "--out", str(tmp_path / "o")])
    assert args.dff_window == DFF_WINDOW_S

    # the same numbers: correlates' activity, resampled onto the camera clock, is the joint data's
    session = Session.open(small)
    times = np.loadtxt(small / "face_timestamps.csv", delimiter=",", skiprows=1)[:, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        act = session_activity(small)
        joint = activity_on_camera_clock(SessionFrames(session, None, None, times), "dff", 0.0, None, 10.0)
    on_cam = resample(act.traces, act.t, times, method="linear", axis=1).T
    np.testing.assert_allclose(joint.neural[joint.valid], on_cam[joint.valid], rtol=1e-5, atol=1e-6)

    # embed recomputes the activity with the checkpoint's recorded window, the convention when absent
    seen = []

    def spy(*a, **kw):
        seen.append(activity_on_camera_clock(*a, **kw))
        raise KeyboardInterrupt  # stop before the model is needed

    fake = SimpleNamespace(
        is_joint_encoder=True, data_record={"window": 4, "lag_s": 0.0}, sessions={session.name: 1}
    )
    monkeypatch.setattr(embed, "load_model", lambda *a, **k: SimpleNamespace(module=fake))
    monkeypatch.setattr(embed, "activity_on_camera_clock", spy)
    with pytest.raises(KeyboardInterrupt):
        embed.embed_session(small, "model.ckpt", cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(seen[0].neural, joint.neural)


def test_clocks_that_do_not_overlap_are_one_data_error_in_correlates_and_joint_data(small, tmp_path):
    from mouseemo.analysis.correlates_run import analyse_session
    from mouseemo.data.face_datamodule import SessionFrames
    from mouseemo.data.neural_datamodule import activity_on_camera_clock
    from mouseemo.data.session import Session
    from mouseemo.inference.traces import FaceTraces

    late = _copy_session(small, tmp_path / "late")
    t = np.loadtxt(late / "imaging_timestamps.csv", delimiter=",", skiprows=1)
    (late / "imaging_timestamps.csv").write_text(
        "frame,time_s\n" + "".join(f"{int(f)},{ti + 5000:.6f}\n" for f, ti in t)
    )
    times = np.loadtxt(late / "face_timestamps.csv", delimiter=",", skiprows=1)[:, 1]
    face = FaceTraces(names=["x"], t=times, scores=np.zeros((len(times), 1)), kind="traces", info={})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataError, match=r"late: camera and imaging timestamps do not overlap"):
            analyse_session(late, face)
        with pytest.raises(DataError, match="do not overlap"):
            activity_on_camera_clock(
                SessionFrames(Session.open(late), None, None, times), "dff", 0.0, None, 10.0
            )


def test_slow_baseline_keeps_an_emotion_block_and_takes_the_drift():
    """The baseline taken off before the null follows a drift but not a 60 s block (a malaise), which a
    straight line through the recording would bend."""
    from mouseemo.analysis.correlates_stats import remove_slow_baseline

    t = np.arange(int(240 * FS)) / FS
    block = ((t > 90) & (t < 150)).astype(float)
    drift = t / 600.0  # 0.1 per minute, 0.4 in all
    out = remove_slow_baseline((block + drift)[None], FS, 120.0)[0]
    inside, outside = out[(t > 100) & (t < 140)], out[(t > 20) & (t < 80)]
    assert abs(inside.mean() - outside.mean() - 1.0) < 0.15  # the block keeps its height
    assert np.ptp(outside) < 0.01 < 0.05 < np.ptp(drift[(t > 20) & (t < 80)])  # the drift is gone
