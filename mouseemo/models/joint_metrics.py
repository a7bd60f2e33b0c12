"""Held-out metrics of a joint face <-> neural embedding, each beside a shuffle control.

* :func:`retrieval` — cross-modal retrieval: does a face window find its own neural window (within
  ``tolerance_s``) among all windows of the same recording, and the other way round?
* :func:`variance_explained` — how much of each neuron's (and the population's) held-out activity a
  prediction explains; :func:`ridge_baseline` is the linear comparison (ridge or reduced-rank
  regression from principal components of HOG, as Facemap compares against).
* :func:`knn_decode` — emotion decoding with k nearest neighbours fitted on training windows.
* :func:`half_roll` — the shuffle control: each recording's partner rolled by half its length, which
  keeps every signal's own structure and breaks only the alignment between them.

Plain numpy (and scikit-learn); arrays in, numbers out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mouseemo.errors import DataError


def half_roll(groups: Sequence[str]) -> np.ndarray:
    """Index that rolls the rows of each group (recording) by half the group's length.

    Rows must be sorted by time within each group. ``x[half_roll(g)]`` pairs each row with one from
    the same recording, far from it in time.

    Shape:
        ``(M,)`` -> ``(M,)`` int64.
    """
    groups = np.asarray(groups)
    out = np.arange(len(groups))
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        out[idx] = np.roll(idx, len(idx) // 2)
    return out


def _by_group(groups: Sequence[str]) -> list[np.ndarray]:
    groups = np.asarray(groups)
    return [np.flatnonzero(groups == g) for g in np.unique(groups)]


def retrieval(
    face: np.ndarray,
    neural: np.ndarray,
    times: np.ndarray,
    groups: Sequence[str],
    ks: Sequence[int] = (1, 5),
    tolerance_s: float = 1.0,
) -> dict[str, float]:
    """Cross-modal retrieval within each recording, both directions averaged.

    A face query ``i`` ranks every neural window of its recording by cosine similarity; it scores a
    hit at ``k`` when one of the ``k`` best lies within ``tolerance_s`` of ``times[i]``. The same for
    neural queries over face windows.

    Returns:
        ``{"top{k}": fraction of hits, "chance_top{k}": the expected fraction for random rankings}``.

    Shape:
        face, neural ``(M, D)``; times ``(M,)``.
    """
    face = np.asarray(face, dtype=np.float64)
    neural = np.asarray(neural, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if face.shape != neural.shape or len(times) != len(face):
        raise DataError(f"retrieval: face {face.shape}, neural {neural.shape}, times {times.shape} differ")
    hits = {k: 0.0 for k in ks}
    chance = {k: 0.0 for k in ks}
    total = 0
    for idx in _by_group(groups):
        f, n, t = face[idx], neural[idx], times[idx]
        near = np.abs(t[:, None] - t[None, :]) <= tolerance_s  # (m, m)
        sim = f @ n.T
        m = len(idx)
        for k in ks:
            kk = min(k, m)
            for s in (sim, sim.T):
                top = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
                hits[k] += float(np.take_along_axis(near, top, axis=1).any(axis=1).sum())
            # random ranking: P(at least one of k draws without replacement is near)
            frac = near.sum(axis=1)
            miss = np.ones(m)
            for j in range(kk):
                miss *= np.clip((m - frac - j) / (m - j), 0.0, 1.0)
            chance[k] += 2.0 * float((1.0 - miss).sum())
        total += 2 * m
    out = {f"top{k}": hits[k] / max(total, 1) for k in ks}
    out.update({f"chance_top{k}": chance[k] / max(total, 1) for k in ks})
    return out


def variance_explained(
    pred: np.ndarray,
    target: np.ndarray,
    groups: Sequence[str],
    num_neurons: dict[str, int] | None = None,
    reference: dict[str, np.ndarray] | None = None,
) -> tuple[dict[str, np.ndarray], float]:
    """Fraction of held-out variance explained, per neuron and for the population.

    ``1 - SSE / SST``. ``SST`` is taken around the test mean by default; with ``reference`` (per
    group, e.g. each neuron's training mean) around that instead: the out-of-sample R² of Campbell &
    Thompson, the fraction of the error of always predicting the training mean that the prediction
    removes. (Short held-out blocks sit at other baselines than the training data; around the test
    mean, a prediction is charged for an offset nothing could have known.) Rows of different
    recordings may have different neuron counts: columns beyond ``num_neurons[group]`` are padding
    and left out.

    Returns:
        ``({group: (N_g,) per-neuron values}, population value over every neuron of every group)``.

    Shape:
        pred, target ``(M, N_max)``.
    """
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    groups = np.asarray(groups)
    per: dict[str, np.ndarray] = {}
    sse_all = sst_all = 0.0
    for idx in _by_group(groups):
        g = str(groups[idx[0]])
        n = num_neurons.get(g, target.shape[1]) if num_neurons else target.shape[1]
        y, p = target[idx, :n], pred[idx, :n]
        sse = ((y - p) ** 2).sum(axis=0)
        ref = y.mean(axis=0) if reference is None else np.asarray(reference[g], dtype=np.float64)[:n]
        sst = ((y - ref) ** 2).sum(axis=0)
        per[g] = 1.0 - sse / np.where(sst > 0, sst, np.nan)
        sse_all += float(sse.sum())
        sst_all += float(sst.sum())
    return per, (1.0 - sse_all / sst_all) if sst_all > 0 else float("nan")


def ridge_baseline(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    num_components: int = 50,
    rank: int | None = None,
    alphas: Sequence[float] = (1.0, 10.0, 100.0, 1000.0, 10000.0),
    folds: int = 5,
) -> np.ndarray:
    """Linear prediction of neural activity from principal components of face features.

    PCA (fitted on the training rows) to ``num_components``, then ridge regression with the penalty
    chosen by cross-validation over ``folds`` contiguous blocks of the training rows (rows in time
    order: leave-one-out would pick too small a penalty for autocorrelated samples); with ``rank``,
    the fitted map is truncated to its ``rank`` leading output directions (reduced-rank ridge).

    Shape:
        x_train ``(M, D)``, y_train ``(M, N)``, x_test ``(M', D)`` -> ``(M', N)``.
    """
    from sklearn.decomposition import PCA
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold

    x_train = np.asarray(x_train, dtype=np.float64)
    y_train = np.asarray(y_train, dtype=np.float64)
    x_test = np.asarray(x_test, dtype=np.float64)
    ncomp = int(max(1, min(num_components, x_train.shape[0] - 1, x_train.shape[1])))
    pca = PCA(n_components=ncomp, random_state=0).fit(x_train)
    z_train = pca.transform(x_train)
    z_test = pca.transform(x_test)
    scale = z_train.std(axis=0) + 1e-12
    z_train, z_test = z_train / scale, z_test / scale
    cv = KFold(int(min(folds, len(z_train)))) if len(z_train) >= 4 else None
    model = RidgeCV(alphas=list(alphas), cv=cv).fit(z_train, y_train)
    if rank is None or rank >= min(y_train.shape[1], ncomp):
        return _columns(model.predict(z_test), y_train)
    fitted = _columns(model.predict(z_train), y_train) - model.intercept_
    _, _, vt = np.linalg.svd(fitted, full_matrices=False)
    proj = vt[:rank].T @ vt[:rank]  # (N, N) onto the leading output directions
    return (z_test @ model.coef_.T) @ proj + model.intercept_


def cross_fitted(fit_predict, x: np.ndarray, y: np.ndarray, folds: int = 5) -> np.ndarray:
    """Out-of-fold predictions of ``fit_predict(x_fit, y_fit, x_held)`` over ``folds`` contiguous
    blocks of the rows (in time order): each block predicted by a fit on the others.

    Shape:
        x ``(M, D)``, y ``(M, N)`` -> ``(M, N)``.
    """
    out = np.zeros((len(x), y.shape[1]))
    for held in np.array_split(np.arange(len(x)), min(folds, len(x))):
        fit = np.ones(len(x), dtype=bool)
        fit[held] = False
        out[held] = fit_predict(x[fit], y[fit], x[held])
    return out


def residual_ridge(
    x_train: np.ndarray,
    r_train: np.ndarray,
    x_val: np.ndarray,
    r_val: np.ndarray,
    x_test: np.ndarray,
    num_components: int = 50,
    alphas: Sequence[float] = (1.0, 10.0, 100.0, 1e3, 1e4),
) -> tuple[np.ndarray, float | None]:
    """Ridge from ``x`` to a residual ``r``, its penalty (or no correction at all) chosen on
    separate validation rows: for features fitted on the training rows themselves (a trained
    tower's), cross-validation within them would trust the features too much.

    Returns:
        ``(prediction for x_test (M', N), chosen penalty or None when no correction won)``.
    """
    from sklearn.linear_model import Ridge

    best, best_sse = None, float((np.asarray(r_val) ** 2).sum())
    if len(x_val) == 0:
        return np.zeros((len(x_test), r_train.shape[1])), None
    z_tr, z_rest = principal_components(x_train, np.concatenate([x_val, x_test]), num_components)
    z_val, z_te = z_rest[: len(x_val)], z_rest[len(x_val) :]
    for a in alphas:
        model = Ridge(alpha=a).fit(z_tr, r_train)
        sse = float(((_columns(model.predict(z_val), r_train) - r_val) ** 2).sum())
        if sse < best_sse:
            best, best_sse = a, sse
    if best is None:
        return np.zeros((len(x_test), r_train.shape[1])), None
    return _columns(Ridge(alpha=best).fit(z_tr, r_train).predict(z_te), r_train), best


def _columns(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """scikit-learn's prediction ``(M,)`` for a single-column target back to ``(M, 1)``."""
    return np.asarray(pred).reshape(len(pred), np.shape(y)[1])


def principal_components(
    x_train: np.ndarray, x_test: np.ndarray, num_components: int
) -> tuple[np.ndarray, np.ndarray]:
    """Principal components (fitted on ``x_train``), each scaled to unit training variance.

    Shape:
        x_train ``(M, D)``, x_test ``(M', D)`` -> ``(M, K)``, ``(M', K)``.
    """
    from sklearn.decomposition import PCA

    x_train = np.asarray(x_train, dtype=np.float64)
    ncomp = int(max(1, min(num_components, x_train.shape[0] - 1, x_train.shape[1])))
    pca = PCA(n_components=ncomp, random_state=0).fit(x_train)
    z_train, z_test = pca.transform(x_train), pca.transform(np.asarray(x_test, dtype=np.float64))
    scale = z_train.std(axis=0) + 1e-12
    return z_train / scale, z_test / scale


def knn_decode(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, k: int = 5, metric: str = "euclidean"
) -> np.ndarray:
    """k-nearest-neighbour labels (distance-weighted vote).

    Shape:
        x_train ``(M, D)``, y_train ``(M,)``, x_test ``(M', D)`` -> ``(M',)``.
    """
    from sklearn.neighbors import KNeighborsClassifier

    k = int(max(1, min(k, len(x_train))))
    clf = KNeighborsClassifier(n_neighbors=k, weights="distance", metric=metric)
    return clf.fit(np.asarray(x_train), np.asarray(y_train)).predict(np.asarray(x_test))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Macro-F1 over the classes present in ``y_true``."""
    from sklearn.metrics import f1_score

    labels = np.unique(y_true)
    if len(labels) == 0:
        return float("nan")
    return float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))
