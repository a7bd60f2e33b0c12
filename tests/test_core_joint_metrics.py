"""Joint-embedding metrics against brute-force references and scikit-learn."""

import math

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.metrics import f1_score, r2_score
from sklearn.model_selection import KFold
from sklearn.neighbors import KNeighborsClassifier

from mouseemo.errors import DataError
from mouseemo.models.joint_metrics import (
    cross_fitted,
    half_roll,
    knn_decode,
    macro_f1,
    principal_components,
    residual_ridge,
    retrieval,
    ridge_baseline,
    variance_explained,
)


def test_half_roll_exact():
    groups = ["a", "a", "b", "a", "b", "b", "a", "a"]
    # a: rows 0 1 3 6 7 (5 -> roll by 2), b: rows 2 4 5 (3 -> roll by 1)
    assert half_roll(groups).tolist() == [6, 7, 5, 0, 2, 4, 1, 3]
    assert half_roll(["x"]).tolist() == [0]


def reference_retrieval(face, neural, times, groups, ks, tol):
    hits = dict.fromkeys(ks, 0.0)
    chance = dict.fromkeys(ks, 0.0)
    total = 0
    for g in sorted(set(groups)):
        idx = [i for i, x in enumerate(groups) if x == g]
        m = len(idx)
        for qs, cs in ((face, neural), (neural, face)):
            for i in idx:
                near = [j for j in idx if abs(times[i] - times[j]) <= tol]
                ranked = sorted(idx, key=lambda j: -float(qs[i] @ cs[j]))
                for k in ks:
                    kk = min(k, m)
                    hits[k] += any(j in near for j in ranked[:kk])
                    chance[k] += 1 - math.comb(m - len(near), kk) / math.comb(m, kk)
                total += 1
    out = {f"top{k}": hits[k] / total for k in ks}
    out |= {f"chance_top{k}": chance[k] / total for k in ks}
    return out


@pytest.mark.parametrize("ks, tol", [((1, 5), 1.0), ((1, 2, 3, 20), 0.0), ((2,), 2.5)])
def test_retrieval_against_brute_force(ks, tol):
    rng = np.random.default_rng(0)
    groups = ["a"] * 9 + ["b"] * 6
    times = np.concatenate([np.arange(9) * 0.5, np.arange(6) * 0.5])
    face = rng.normal(size=(15, 4))
    neural = face + rng.normal(scale=1.5, size=(15, 4))
    out = retrieval(face, neural, times, groups, ks=ks, tolerance_s=tol)
    ref = reference_retrieval(face, neural, times, groups, ks, tol)
    assert out.keys() == ref.keys()
    for key, value in ref.items():
        assert out[key] == pytest.approx(value, abs=1e-12), key


def test_retrieval_defaults_and_errors():
    rng = np.random.default_rng(1)
    face = rng.normal(size=(12, 3))
    times = np.arange(12) * 0.4
    groups = ["a"] * 12
    assert retrieval(face, face, times, groups) == pytest.approx(
        reference_retrieval(face, face, times, groups, (1, 5), 1.0), abs=1e-12
    )
    with pytest.raises(DataError, match=r"retrieval: face \(12, 3\), neural \(11, 3\), times \(12,\) differ"):
        retrieval(face, face[:11], times, groups)
    with pytest.raises(DataError, match="differ"):
        retrieval(face, face, times[:5], groups)


def test_variance_explained_against_r2():
    rng = np.random.default_rng(2)
    target = rng.normal(size=(20, 4)) + 3.0
    pred = target + rng.normal(scale=0.5, size=(20, 4))
    groups = ["a"] * 12 + ["b"] * 8
    per, pop = variance_explained(pred, target, groups, num_neurons={"b": 2})
    np.testing.assert_allclose(
        per["a"], r2_score(target[:12], pred[:12], multioutput="raw_values"), rtol=1e-12
    )
    np.testing.assert_allclose(
        per["b"], r2_score(target[12:, :2], pred[12:, :2], multioutput="raw_values"), rtol=1e-12
    )
    sse = ((target[:12] - pred[:12]) ** 2).sum() + ((target[12:, :2] - pred[12:, :2]) ** 2).sum()
    sst = ((target[:12] - target[:12].mean(0)) ** 2).sum() + (
        (target[12:, :2] - target[12:, :2].mean(0)) ** 2
    ).sum()
    assert pop == pytest.approx(1 - sse / sst, rel=1e-12)
    # around a reference (training means) instead of the test mean; a constant neuron gives NaN
    ref = {"a": np.array([3.0, 2.0, 0.0, 1.0, 99.0])}
    target2 = target[:12].copy()
    target2[:, 3] = 1.0
    per2, pop2 = variance_explained(pred[:12], target2, ["a"] * 12, reference=ref)
    sst2 = ((target2 - ref["a"][:4]) ** 2).sum(axis=0)
    sse2 = ((target2 - pred[:12]) ** 2).sum(axis=0)
    np.testing.assert_allclose(per2[:3] if False else per2["a"][:3], 1 - sse2[:3] / sst2[:3], rtol=1e-12)
    assert np.isnan(per2["a"][3]) is np.False_ or np.isnan(per2["a"][3])
    assert np.isnan(per2["a"][3])
    assert pop2 == pytest.approx(1 - sse2.sum() / sst2.sum(), rel=1e-12)
    _, nan_pop = variance_explained(np.zeros((3, 1)), np.ones((3, 1)), ["a"] * 3)
    assert math.isnan(nan_pop)


def reference_ridge(x_train, y_train, x_test, ncomp, alphas, folds):
    pca = PCA(n_components=ncomp, random_state=0).fit(x_train)
    z_tr, z_te = pca.transform(x_train), pca.transform(x_test)
    s = z_tr.std(axis=0) + 1e-12
    model = RidgeCV(alphas=list(alphas), cv=KFold(folds)).fit(z_tr / s, y_train)
    return model, z_tr / s, z_te / s


def ridge_data(seed=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(40, 6))
    y = x[:, :3] @ rng.normal(size=(3, 4)) + 0.3 * rng.normal(size=(40, 4))
    return x[:30], y[:30], x[30:]


def test_ridge_baseline_matches_sklearn_pipeline():
    x_tr, y_tr, x_te = ridge_data()
    out = ridge_baseline(x_tr, y_tr, x_te, num_components=4, alphas=(0.1, 1.0, 10.0), folds=3)
    model, _, z_te = reference_ridge(x_tr, y_tr, x_te, 4, (0.1, 1.0, 10.0), 3)
    np.testing.assert_allclose(out, model.predict(z_te), rtol=1e-10, atol=1e-12)
    # defaults: 50 components clipped to the 6 features, five folds, penalties 1 .. 1e4
    model, _, z_te = reference_ridge(x_tr, y_tr, x_te, 6, (1.0, 10.0, 100.0, 1000.0, 10000.0), 5)
    np.testing.assert_allclose(ridge_baseline(x_tr, y_tr, x_te), model.predict(z_te), rtol=1e-10, atol=1e-12)
    # full rank asked for: no truncation
    np.testing.assert_allclose(
        ridge_baseline(x_tr, y_tr, x_te, rank=4), model.predict(z_te), rtol=1e-10, atol=1e-12
    )


def test_ridge_baseline_reduced_rank():
    x_tr, y_tr, x_te = ridge_data()
    out = ridge_baseline(x_tr, y_tr, x_te, num_components=5, rank=2, alphas=(1.0,), folds=5)
    model, z_tr, z_te = reference_ridge(x_tr, y_tr, x_te, 5, (1.0,), 5)
    _, _, vt = np.linalg.svd(model.predict(z_tr) - model.intercept_, full_matrices=False)
    expected = (z_te @ model.coef_.T) @ (vt[:2].T @ vt[:2]) + model.intercept_
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)
    assert np.linalg.matrix_rank(out - model.intercept_) == 2


def test_ridge_baseline_few_rows():
    """Under four rows: generalised cross-validation (cv=None); components clipped to rows - 1."""
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(3, 5)), rng.normal(size=(3, 2))
    pca = PCA(n_components=2, random_state=0).fit(x)
    z = pca.transform(x)
    s = z.std(axis=0) + 1e-12
    model = RidgeCV(alphas=[1.0, 10.0]).fit(z / s, y)
    out = ridge_baseline(x, y, x[:1], alphas=(1.0, 10.0))
    np.testing.assert_allclose(out, model.predict(pca.transform(x[:1]) / s), rtol=1e-10)
    # four rows: contiguous folds, as many as rows allow
    x4, y4 = rng.normal(size=(4, 5)), rng.normal(size=(4, 2))
    model, _, z_te = reference_ridge(x4, y4, x4[:2], 3, (1.0, 10.0), 4)
    np.testing.assert_allclose(
        ridge_baseline(x4, y4, x4[:2], alphas=(1.0, 10.0)), model.predict(z_te), rtol=1e-10
    )


def test_cross_fitted_blocks():
    x = np.arange(10.0)[:, None]
    y = np.zeros((10, 2))
    calls = []

    def fit_predict(xf, yf, xh):
        calls.append((xf[:, 0].tolist(), xh[:, 0].tolist()))
        return np.column_stack([xh[:, 0] * 10, np.full(len(xh), len(xf))])

    out = cross_fitted(fit_predict, x, y, folds=3)
    assert calls[0] == ([4.0, 5, 6, 7, 8, 9], [0.0, 1, 2, 3])
    assert [c[1] for c in calls] == [[0.0, 1, 2, 3], [4.0, 5, 6], [7.0, 8, 9]]
    np.testing.assert_array_equal(out[:, 0], np.arange(10.0) * 10)
    np.testing.assert_array_equal(out[:, 1], [6, 6, 6, 6, 7, 7, 7, 7, 7, 7])
    calls.clear()
    cross_fitted(fit_predict, x[:3], y[:3])  # default 5 folds, clipped to 3 rows
    assert len(calls) == 3
    calls.clear()
    cross_fitted(fit_predict, x, y)
    assert len(calls) == 5


def test_principal_components_unit_variance():
    rng = np.random.default_rng(5)
    x_tr, x_te = rng.normal(size=(8, 3)) * [1, 5, 20], rng.normal(size=(2, 3))
    z_tr, z_te = principal_components(x_tr, x_te, 10)
    pca = PCA(n_components=3, random_state=0).fit(x_tr)
    s = pca.transform(x_tr).std(axis=0) + 1e-12
    np.testing.assert_allclose(z_tr, pca.transform(x_tr) / s, rtol=1e-10)
    np.testing.assert_allclose(z_te, pca.transform(x_te) / s, rtol=1e-10)
    assert principal_components(x_tr, x_te, 2)[0].shape == (8, 2)
    assert principal_components(x_tr[:2], x_te, 5)[1].shape == (2, 1)
    assert principal_components(x_tr, x_te, 0)[0].shape == (8, 1)


def test_residual_ridge_choices():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(60, 4))
    r = x @ rng.normal(size=(4, 2))
    out, best = residual_ridge(x[:40], r[:40], x[40:50], r[40:50], x[50:], alphas=(100.0, 0.1, 1.0))
    assert best == 0.1
    z_tr, z_rest = principal_components(x[:40], x[40:], 50)
    expected = Ridge(alpha=0.1).fit(z_tr, r[:40]).predict(z_rest[10:])
    np.testing.assert_allclose(out, expected, rtol=1e-10)
    # a residual that nothing predicts: no correction
    noise = rng.normal(size=(60, 2))
    out, best = residual_ridge(x[:40], noise[:40] * 0, x[40:50], noise[40:50], x[50:])
    assert best is None
    np.testing.assert_array_equal(out, np.zeros((10, 2)))
    # no validation rows: no correction
    out, best = residual_ridge(x[:40], r[:40], x[:0], r[:0], x[50:])
    assert best is None and out.shape == (10, 2) and not out.any()


def test_knn_decode_matches_sklearn():
    rng = np.random.default_rng(8)
    x_tr, y_tr, x_te = rng.normal(size=(30, 3)), rng.integers(0, 3, 30), rng.normal(size=(12, 3))
    for k, metric in ((5, "euclidean"), (3, "cosine")):
        ref = KNeighborsClassifier(n_neighbors=k, weights="distance", metric=metric).fit(x_tr, y_tr)
        np.testing.assert_array_equal(knn_decode(x_tr, y_tr, x_te, k=k, metric=metric), ref.predict(x_te))
    ref = KNeighborsClassifier(n_neighbors=5, weights="distance").fit(x_tr, y_tr)
    np.testing.assert_array_equal(knn_decode(x_tr, y_tr, x_te), ref.predict(x_te))
    # k larger than the training set is clipped; k below one becomes one
    ref = KNeighborsClassifier(n_neighbors=4, weights="distance").fit(x_tr[:4], y_tr[:4])
    np.testing.assert_array_equal(knn_decode(x_tr[:4], y_tr[:4], x_te, k=50), ref.predict(x_te))
    ref = KNeighborsClassifier(n_neighbors=1).fit(x_tr, y_tr)
    np.testing.assert_array_equal(knn_decode(x_tr, y_tr, x_te, k=0), ref.predict(x_te))


def test_macro_f1_over_present_classes():
    y_true = np.array([0, 0, 1, 1, 2])
    y_pred = np.array([0, 1, 1, 3, 3])
    assert macro_f1(y_true, y_pred) == pytest.approx(
        f1_score(y_true, y_pred, labels=[0, 1, 2], average="macro")
    )
    assert macro_f1(y_true, y_pred) == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    assert math.isnan(macro_f1(np.array([]), np.array([])))


def test_one_neuron_keeps_its_column():
    """A single-column target (a recording with one neuron) gives (M', 1) predictions, and the
    validation error of a correction is taken row by row (not broadcast over a (M, M) grid)."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(60, 3))
    r = x @ rng.normal(size=(3, 1)) + 0.01 * rng.normal(size=(60, 1))
    assert ridge_baseline(x[:40], r[:40], x[40:]).shape == (20, 1)
    assert ridge_baseline(x[:40], r[:40], x[40:], rank=1).shape == (20, 1)
    out, best = residual_ridge(x[:40], r[:40], x[40:50], r[40:50], x[50:])
    assert best == 1.0 and out.shape == (10, 1)
    assert ((out - r[50:]) ** 2).sum() < 0.01 * (r[50:] ** 2).sum()


def test_half_roll_three_groups():
    assert half_roll(["a", "b", "c", "a", "b", "a"]).tolist() == [5, 4, 2, 0, 1, 3]


def test_retrieval_exact_on_narrow_dtypes_and_big_groups():
    """Times and features are used as float64 (unsigned times do not wrap, int8 products do not
    overflow), and top-k picks the k best of a large recording."""
    rng = np.random.default_rng(9)
    face = rng.integers(-100, 100, (40, 6)).astype(np.int8)
    neural = (face.astype(np.int16) + rng.integers(-60, 60, (40, 6))).clip(-128, 127).astype(np.int8)
    times = np.arange(40, dtype=np.uint16)
    groups = ["a"] * 40
    out = retrieval(face, neural, times, groups, ks=(1, 3), tolerance_s=1.0)
    ref = reference_retrieval(
        face.astype(float), neural.astype(float), times.astype(float), groups, (1, 3), 1.0
    )
    for key, value in ref.items():
        assert out[key] == pytest.approx(value, abs=1e-12), key
    face = rng.normal(size=(300, 5))
    neural = face + rng.normal(size=(300, 5))
    times = np.arange(300) * 0.1
    out = retrieval(face, neural, times, ["a"] * 300, ks=(1, 4), tolerance_s=0.25)
    ref = reference_retrieval(face, neural, times, ["a"] * 300, (1, 4), 0.25)
    for key, value in ref.items():
        assert out[key] == pytest.approx(value, abs=1e-12), key


def test_variance_explained_small_and_narrow_inputs():
    # int8 differences are taken in float64; a one-row group is named by its own row
    target = np.array([[100], [-100], [50], [7]], dtype=np.int8)
    pred = np.array([[-100], [100], [40], [7]], dtype=np.int8)
    per, pop = variance_explained(pred, target, ["a", "a", "a", "b"])
    y = target[:3, 0].astype(float)
    sse = ((y - pred[:3, 0]) ** 2).sum()
    assert per["a"][0] == pytest.approx(1 - sse / ((y - y.mean()) ** 2).sum(), rel=1e-12)
    assert np.isnan(per["b"][0])
    # variances below 1 still count
    small = np.array([[0.1], [0.2], [0.3]])
    per, pop = variance_explained(small * 0.5 + 0.1, small, ["a"] * 3)
    assert per["a"][0] == pytest.approx(r2_score(small, small * 0.5 + 0.1), rel=1e-12)
    assert pop == pytest.approx(per["a"][0], rel=1e-12)


def test_ridge_and_components_keep_float64_for_float32_input():
    x_tr, y_tr, x_te = ridge_data()
    ref = ridge_baseline(x_tr, y_tr, x_te, num_components=4, alphas=(1.0,), folds=3)
    out = ridge_baseline(
        x_tr.astype(np.float32).astype(np.float64), y_tr, x_te, num_components=4, alphas=(1.0,), folds=3
    )
    x32, y32, t32 = x_tr.astype(np.float32), y_tr.astype(np.float32), x_te.astype(np.float32)
    exact = ridge_baseline(
        x32.astype(np.float64), y32.astype(np.float64), t32.astype(np.float64), 4, alphas=(1.0,), folds=3
    )
    got = ridge_baseline(x32, y32, t32, 4, alphas=(1.0,), folds=3)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, exact, rtol=1e-12, atol=1e-12)
    assert out.shape == ref.shape
    z = principal_components(x32, t32, 4)
    z64 = principal_components(x32.astype(np.float64), t32.astype(np.float64), 4)
    np.testing.assert_allclose(z[0], z64[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(z[1], z64[1], rtol=1e-12, atol=1e-12)


def test_component_counts_at_their_limits():
    rng = np.random.default_rng(10)
    # one feature: one component; three rows: two components
    assert principal_components(rng.normal(size=(6, 1)), rng.normal(size=(2, 1)), 5)[0].shape == (6, 1)
    assert principal_components(rng.normal(size=(3, 3)), rng.normal(size=(2, 3)), 5)[0].shape == (3, 2)
    x, y = rng.normal(size=(6, 1)), rng.normal(size=(6, 2))
    assert ridge_baseline(x, y, x[:2]).shape == (2, 2)
    # more than 50 features: the default keeps 50 components
    x, y = rng.normal(size=(70, 60)), rng.normal(size=(70, 2))
    np.testing.assert_allclose(
        ridge_baseline(x, y, x[:3]), ridge_baseline(x, y, x[:3], num_components=50), rtol=1e-12
    )
    assert not np.allclose(
        ridge_baseline(x, y, x[:3]), ridge_baseline(x, y, x[:3], num_components=51), rtol=1e-6
    )
    x = rng.normal(size=(90, 60))
    r = x @ rng.normal(size=(60, 1))
    a = residual_ridge(x[:70], r[:70], x[70:80], r[70:80], x[80:])
    b = residual_ridge(x[:70], r[:70], x[70:80], r[70:80], x[80:], num_components=50)
    c = residual_ridge(x[:70], r[:70], x[70:80], r[70:80], x[80:], num_components=51)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.allclose(a[0], c[0], rtol=1e-6)


def test_principal_components_scale_of_tiny_variances():
    """The scale is std + 1e-12, which matters for features of tiny variance."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=(10, 2)) * 1e-10
    z, _ = principal_components(x, x[:1], 2)
    s = PCA(2).fit(x).transform(x).std(axis=0)
    np.testing.assert_allclose(z.std(axis=0), s / (s + 1e-12), rtol=1e-9)


def test_cross_fitted_passes_the_fit_rows_of_y():
    x = np.arange(6.0)[:, None]
    y = np.arange(6.0)[:, None] * 100
    out = cross_fitted(lambda xf, yf, xh: np.full((len(xh), 1), yf.sum()), x, y, folds=2)
    np.testing.assert_array_equal(out[:, 0], [1200, 1200, 1200, 300, 300, 300])


def test_residual_ridge_baseline_is_the_error_of_no_correction():
    """A penalty wins only by beating sum(r_val ** 2), the error of adding nothing."""
    rng = np.random.default_rng(12)
    x = rng.normal(size=(60, 3))
    for value in (1.0, 1.5):
        r_val = np.full((10, 1), value)
        out, best = residual_ridge(x[:40], np.zeros((40, 1)), x[40:50], r_val, x[50:])
        assert best is None and not out.any()


def test_ridge_baseline_default_folds_and_knn_default_k():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 6))
    y = x[:, :3] @ rng.normal(size=(3, 4)) + 2 * rng.normal(size=(40, 4))
    alphas = tuple(np.geomspace(0.01, 1000, 60))
    default = ridge_baseline(x[:30], y[:30], x[30:], alphas=alphas)
    np.testing.assert_array_equal(default, ridge_baseline(x[:30], y[:30], x[30:], alphas=alphas, folds=5))
    assert not np.allclose(default, ridge_baseline(x[:30], y[:30], x[30:], alphas=alphas, folds=6))
    x_tr, y_tr, x_te = rng.normal(size=(30, 3)), rng.integers(0, 3, 30), rng.normal(size=(400, 3))
    ref = KNeighborsClassifier(n_neighbors=5, weights="distance").fit(x_tr, y_tr).predict(x_te)
    np.testing.assert_array_equal(knn_decode(x_tr, y_tr, x_te), ref)
