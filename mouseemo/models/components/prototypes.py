"""Prototypical expressions (Dolensek et al. 2020) as plain functions on HOG feature arrays.

No Lightning, no files: callers hand in features ``(T, D)`` and masks saying which frames are baseline
and which lie in which stimulus window, and get prototype vectors back.

Prototypes:
    * **neutral**: mean HOG of the baseline frames (frames in ``neutral`` events, else the frames
      before the first stimulus; see :meth:`mouseemo.data.events.Events.baseline_mask`).
    * **emotion**, mode ``"least-neutral"`` (the Zenodo demo): inside that label's windows, correlate
      each frame with the neutral prototype and average the HOG of the ``k`` least-correlated frames.
    * **emotion**, mode ``"window-mean"`` (the lab's later variant): average each window's frames, then
      average those window means across trials (every trial weighs the same, whatever its length).
    * ``drop_first_trial`` leaves the first window (trial) of each label out, in either mode.

Fitting (:func:`fit_prototypes`, the one path the Lightning module, ``mouseemo prototypes`` and
their scorers share): prototypes are built per unit (a session, video, animal or pool of frames, each
against its own neutral) and averaged, units of one group (an animal's sessions) first, then groups.
``"groups"`` pooling builds per animal or video, so every one counts once and no animal's frames can
monopolise the ``k`` least-neutral picks; ``"frames"`` pools all frames first and selects once against
the pooled neutral. With ``relative=True`` the units' *changes* from their neutral are averaged and
added to the mean neutral, and :func:`carry_to_neutral` moves those changes onto any session's own
neutral face.

Readouts per stimulus (:func:`stimulus_readouts`): *intensity* is the peak similarity above the
pre-stimulus baseline inside the window, *persistence* how long the similarity stays above a baseline
threshold (mean + ``threshold_sd`` standard deviations) after the window ends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from mouseemo.data.events import Events
from mouseemo.errors import ConfigError, DataError
from mouseemo.ops.similarity import pearson_similarity

MODES: tuple[str, ...] = ("least-neutral", "window-mean")
POOLING: tuple[str, ...] = ("groups", "frames")
NEUTRAL = "neutral"


@dataclass
class PrototypeSet:
    """Prototype vectors and the frames each was built from.

    Attributes:
        names: prototype names, ``neutral`` first.
        matrix: ``(K, D)`` float64 prototype matrix, rows in ``names`` order.
        frames: per name, the indices (into the caller's feature array) of the frames averaged.
    """

    names: list[str]
    matrix: np.ndarray
    frames: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.matrix.ndim != 2 or len(self.names) != self.matrix.shape[0]:
            raise ValueError(f"{len(self.names)} names for a prototype matrix of shape {self.matrix.shape}")


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ConfigError(f"prototype mode must be one of {list(MODES)}; got {mode!r}")


def neutral_prototype(features: np.ndarray, baseline: np.ndarray, source: str = "") -> np.ndarray:
    """Mean HOG of the baseline frames.

    Args:
        features: ``(T, D)`` HOG features.
        baseline: ``(T,)`` boolean mask of baseline frames.
        source: named in the error message.

    Raises:
        DataError: no baseline frame.

    Shape:
        features ``(T, D)``, baseline ``(T,)`` -> ``(D,)`` float64.
    """
    baseline = np.asarray(baseline, dtype=bool)
    if baseline.shape != (len(features),):
        raise ValueError(f"baseline mask has shape {baseline.shape}; expected ({len(features)},)")
    if not baseline.any():
        where = f" in {source}" if source else ""
        raise DataError(
            f"no baseline frames{where}: need 'neutral' events or frames before the first stimulus"
        )
    return np.asarray(features, dtype=np.float64)[baseline].mean(axis=0)


def least_neutral_indices(
    features: np.ndarray, neutral: np.ndarray, candidates: np.ndarray, k: int
) -> np.ndarray:
    """Indices of the ``k`` candidate frames least Pearson-correlated with ``neutral``.

    Ties are broken by frame order (earlier first), so the choice is deterministic. With fewer than
    ``k`` candidates, all of them are returned.

    Args:
        features: ``(T, D)`` HOG features.
        neutral: ``(D,)`` neutral prototype.
        candidates: integer indices (or a boolean ``(T,)`` mask) of the frames to choose from.
        k: how many frames to pick.

    Shape:
        -> ``(min(k, C),)`` int64, sorted by increasing correlation.
    """
    if k < 1:
        raise ConfigError(f"k (frames per prototype) must be >= 1; got {k}")
    idx = np.asarray(candidates)
    idx = np.flatnonzero(idx) if idx.dtype == bool else idx.astype(np.int64)
    if len(idx) == 0:
        return idx
    r = pearson_similarity(np.asarray(features, dtype=np.float64)[idx], np.asarray(neutral, np.float64))
    order = np.lexsort((idx, r))  # primary key r, ties by frame index
    return idx[order[:k]]


def window_trials(window_ids: np.ndarray, drop_first_trial: bool) -> list[np.ndarray]:
    """Frame indices of each window (trial) in window order, the first dropped if asked."""
    window_ids = np.asarray(window_ids)
    trials = [np.flatnonzero(window_ids == w) for w in np.unique(window_ids[window_ids >= 0])]
    return trials[1:] if drop_first_trial else trials


def emotion_prototype(
    features: np.ndarray,
    neutral: np.ndarray,
    window_ids: np.ndarray,
    mode: str = "least-neutral",
    k: int = 10,
    drop_first_trial: bool = False,
    label: str = "",
    source: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """One emotion's prototype from the frames in its windows.

    Args:
        features: ``(T, D)`` HOG features.
        neutral: ``(D,)`` neutral prototype (used by ``least-neutral``).
        window_ids: ``(T,)`` int: the window (trial) each frame is in, numbered in time order; ``-1``
            outside every window of this label.
        mode: ``"least-neutral"`` or ``"window-mean"``.
        k: frames averaged in ``least-neutral`` mode.
        drop_first_trial: leave the first window out.
        label, source: named in error messages.

    Returns:
        ``(prototype (D,), frame indices used)``.

    Raises:
        DataError: the windows hold no frame (or none left after dropping the first trial).
    """
    _check_mode(mode)
    trials = window_trials(window_ids, drop_first_trial)
    trials = [t for t in trials if len(t)]
    if not trials:
        where = f" of {source}" if source else ""
        extra = " after dropping the first trial" if drop_first_trial else ""
        raise DataError(f"the {label or 'stimulus'} windows select no frames{where}{extra}")
    feats = np.asarray(features, dtype=np.float64)
    if mode == "window-mean":
        used = np.concatenate(trials)
        return np.mean([feats[t].mean(axis=0) for t in trials], axis=0), used
    chosen = least_neutral_indices(feats, neutral, np.concatenate(trials), k)
    return feats[chosen].mean(axis=0), np.sort(chosen)


def build_prototypes(
    features: np.ndarray,
    windows: Mapping[str, np.ndarray],
    neutral: np.ndarray | None = None,
    baseline: np.ndarray | None = None,
    mode: str = "least-neutral",
    k: int = 10,
    drop_first_trial: bool = False,
    source: str = "",
) -> PrototypeSet:
    """Neutral plus one prototype per label in ``windows``, from one animal or video.

    Args:
        features: ``(T, D)`` HOG features.
        windows: label -> ``(T,)`` window ids (``-1`` outside), e.g. from :func:`event_windows`.
        neutral: a precomputed ``(D,)`` neutral prototype (e.g. a streamed mean), or ``None`` to take
            the mean of ``baseline`` frames.
        baseline: ``(T,)`` boolean mask of baseline frames when ``neutral`` is ``None``.
        mode, k, drop_first_trial: see :func:`emotion_prototype`.
        source: named in error messages.

    Returns:
        A :class:`PrototypeSet` with ``neutral`` first, then the labels in ``windows`` order. Baseline
        frames are listed as the neutral prototype's frames when ``baseline`` is given.
    """
    _check_mode(mode)
    frames: dict[str, np.ndarray] = {}
    if neutral is None:
        if baseline is None:
            raise ValueError("pass either neutral or baseline")
        neutral = neutral_prototype(features, baseline, source)
    if baseline is not None:
        frames[NEUTRAL] = np.flatnonzero(baseline)
    else:
        frames[NEUTRAL] = np.zeros(0, dtype=np.int64)
    names, rows = [NEUTRAL], [np.asarray(neutral, dtype=np.float64)]
    for label, ids in windows.items():
        if label == NEUTRAL:
            continue
        proto, used = emotion_prototype(features, neutral, ids, mode, k, drop_first_trial, label, source)
        names.append(label)
        rows.append(proto)
        frames[label] = used
    return PrototypeSet(names=names, matrix=np.stack(rows), frames=frames)


@dataclass
class FitUnit:
    """The frames one set of prototypes is built from (one session, video, animal or pool).

    Attributes:
        name: named in error messages (``source``).
        features: ``(T, D)`` HOG features.
        windows: label -> ``(T,)`` window ids (``-1`` outside), e.g. from :func:`event_windows` or
            :func:`label_windows`; ``neutral`` is skipped.
        neutral: ``(D,)`` the unit's neutral prototype, or ``None`` for the mean of ``baseline``.
        baseline: ``(T,)`` boolean mask of baseline frames (listed as the neutral's frames).
        group: units of one group (e.g. the sessions of one animal) are averaged before groups are;
            ``None``: the unit is a group of its own.
    """

    name: str
    features: np.ndarray
    windows: Mapping[str, np.ndarray]
    neutral: np.ndarray | None = None
    baseline: np.ndarray | None = None
    group: str | None = None


def fit_prototypes(
    units: Sequence[FitUnit],
    mode: str = "least-neutral",
    k: int = 10,
    drop_first_trial: bool = False,
    relative: bool = False,
) -> tuple[PrototypeSet, list[PrototypeSet]]:
    """Prototypes from one or more units: built per unit (:func:`build_prototypes`), then averaged.

    Averages run name by name (:func:`pool_prototypes`) over the units of each group, then over
    groups, in the order the units come. With ``relative=False`` the prototypes themselves are
    averaged. With ``relative=True`` each unit's changes from its own neutral (prototype - neutral)
    are averaged and added to the mean neutral (over groups, of each group's mean); :func:`carry_to_neutral`
    then moves the changes onto another session's neutral.

    Returns:
        ``(pooled, per-unit sets)``: the per-unit sets keep the frames each prototype was built from.
    """
    if not units:
        raise DataError("no frames to build prototypes from")
    sets, grouped, neutrals = [], {}, {}
    for i, u in enumerate(units):
        pset = build_prototypes(
            u.features, u.windows, neutral=u.neutral, baseline=u.baseline, mode=mode, k=k,
            drop_first_trial=drop_first_trial, source=u.name,
        )  # fmt: skip
        sets.append(pset)
        group = u.group if u.group is not None else f"#{i}"
        part = pset
        if relative:
            own = pset.matrix[pset.names.index(NEUTRAL)]
            part = PrototypeSet(pset.names, pset.matrix - own[None])
            neutrals.setdefault(group, []).append(own)
        grouped.setdefault(group, []).append(part)
    if len(units) == 1 and not relative:
        return sets[0], sets
    pooled = pool_prototypes([pool_prototypes(parts) for parts in grouped.values()])
    if relative:
        base = np.mean([np.mean(n, axis=0) for n in neutrals.values()], axis=0)
        pooled = PrototypeSet(pooled.names, pooled.matrix + base[None])
    return pooled, sets


def carry_to_neutral(matrix, names: Sequence[str], own, neutral: str = NEUTRAL):
    """Prototypes carried onto another neutral face: ``prototype - neutral prototype + own``.

    Every prototype keeps its change from the neutral prototype, read against ``own`` (a session's
    own neutral), as the paper reads a new animal's expressions. Computed in float64.

    Args:
        matrix: ``(K, D)`` prototypes (numpy or torch), one row named ``neutral``.
        names: the ``K`` prototype names.
        own: ``(D,)`` the session's neutral HOG (numpy or torch).

    Returns:
        ``(K, D)`` float64, a tensor on ``matrix``'s device when ``matrix`` is one, else numpy.

    Shape:
        ``(K, D)``, ``(D,)`` -> ``(K, D)``.
    """
    names = list(names)
    if neutral not in names:
        raise ConfigError(
            f"carrying prototypes to a session's own neutral needs a {neutral!r} prototype; got {names}"
        )
    j = names.index(neutral)
    import torch

    if torch.is_tensor(matrix):
        base = matrix.double()
        own = torch.as_tensor(own, dtype=torch.float64, device=base.device)
        return base - base[j] + own
    base = np.asarray(matrix, dtype=np.float64)
    return base - base[j] + np.asarray(own, dtype=np.float64)


def event_windows(events: Events, times: np.ndarray, neutral: str = NEUTRAL) -> dict[str, np.ndarray]:
    """Label -> ``(T,)`` window ids of frames at ``times`` for every non-neutral label in ``events``.

    Raises:
        DataError: ``events`` has no stimulus, or a label's windows contain none of the frames (the
            message gives the windows and the time span the frames cover: a clock mismatch is the
            usual cause).
    """
    times = np.asarray(times, dtype=np.float64)
    # vocabulary order, so prototype files list emotions the same way whatever the events' order
    labels = [lab for lab in events.vocabulary if lab in events.label and lab != neutral]
    if not labels:
        raise DataError(f"{events.source or 'events'}: no stimulus events (only {neutral!r} or none)")
    out: dict[str, np.ndarray] = {}
    for lab in labels:
        ids = events.window_ids(times, lab)
        if not (ids >= 0).any():
            wins = ", ".join(f"{a:.2f}-{b:.2f}" for a, b in events.windows(lab)[:4])
            span = f"{times[0]:.2f}-{times[-1]:.2f} s" if len(times) else "no frames"
            raise DataError(
                f"{events.source or 'events'}: the {lab!r} windows ({wins} s) select no frames; "
                f"the video covers {span}"
            )
        out[lab] = ids
    return out


def label_windows(
    labels: np.ndarray,
    classes: Sequence[str],
    times: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    max_gap_s: float = 1.0,
) -> dict[str, np.ndarray]:
    """Window ids from per-frame class indices: each contiguous run of one label is a window.

    Frames must be in time order within each group. A run breaks where the label changes, the group
    (session) changes, or consecutive frames are more than ``max_gap_s`` apart (a time split's gap).

    Shape:
        labels ``(T,)`` int (``-1`` = unlabelled) -> ``{name: (T,) int64}`` for every class present.
    """
    labels = np.asarray(labels)
    n = len(labels)
    brk = np.ones(n, dtype=bool)
    if n > 1:
        brk[1:] = labels[1:] != labels[:-1]
        if groups is not None:
            g = np.asarray(groups)
            brk[1:] |= g[1:] != g[:-1]
        if times is not None:
            brk[1:] |= np.diff(np.asarray(times, dtype=np.float64)) > max_gap_s
    run = np.cumsum(brk) - 1
    out: dict[str, np.ndarray] = {}
    for c, name in enumerate(classes):
        inside = labels == c
        if not inside.any():
            continue
        ids = np.full(n, -1, dtype=np.int64)
        # renumber this label's runs 0, 1, ... in time order
        _, ids[inside] = np.unique(run[inside], return_inverse=True)
        out[name] = ids
    return out


def pool_prototypes(sets: Sequence[PrototypeSet]) -> PrototypeSet:
    """Average per-group (per-animal or per-video) prototype sets, name by name.

    A label missing from some groups is averaged over the groups that have it. Frame indices are not
    merged (they index different arrays); callers keep them per group.
    """
    if not sets:
        raise DataError("no prototype sets to pool")
    names: list[str] = []
    for s in sets:
        names += [n for n in s.names if n not in names]
    rows = [np.mean([s.matrix[s.names.index(n)] for s in sets if n in s.names], axis=0) for n in names]
    return PrototypeSet(names=names, matrix=np.stack(rows), frames={})


def classify(
    similarity: np.ndarray,
    names: Sequence[str],
    margin: float = 0.0,
    neutral: str = NEUTRAL,
) -> np.ndarray:
    """Frame labels: the most similar prototype, unless it beats neutral by less than ``margin``.

    Args:
        similarity: ``(B, K)`` similarities (numpy or torch).
        names: the ``K`` prototype names.
        margin: a frame whose best similarity minus its similarity to ``neutral`` is below
            ``margin`` is labelled neutral; ``0`` is a plain arg-max.
        neutral: name of the neutral prototype.

    Returns:
        ``(B,)`` int64 indices into ``names`` (same library and device as ``similarity``).

    Shape:
        ``(B, K)`` -> ``(B,)``.
    """
    names = list(names)
    if similarity.shape[-1] != len(names):
        raise ValueError(f"similarity has {similarity.shape[-1]} columns for {len(names)} names")
    if margin < 0:
        raise ConfigError(f"margin must be >= 0; got {margin}")
    try:
        import torch

        is_torch = torch.is_tensor(similarity)
    except ImportError:  # pragma: no cover - torch is a dependency
        is_torch = False
    if is_torch:
        sim = torch.nan_to_num(similarity, nan=-2.0)
        best_val, best = sim.max(dim=-1)
        if margin > 0 and neutral in names:
            j = names.index(neutral)
            best = torch.where(best_val - sim[..., j] < margin, torch.full_like(best, j), best)
        return best.long()
    sim = np.nan_to_num(np.asarray(similarity, dtype=np.float64), nan=-2.0)
    best = sim.argmax(axis=-1)
    if margin > 0 and neutral in names:
        j = names.index(neutral)
        best = np.where(sim.max(axis=-1) - sim[..., j] < margin, j, best)
    return best.astype(np.int64)


def stimulus_readouts(
    trace: np.ndarray,
    times: np.ndarray,
    onset: float,
    duration: float,
    baseline_s: float = 4.0,
    post_s: float | None = None,
    threshold_sd: float = 2.0,
) -> dict[str, float | bool | None]:
    """Intensity and persistence of one similarity trace around one stimulus.

    Args:
        trace: ``(T,)`` similarity to the stimulus's prototype.
        times: ``(T,)`` frame times (same clock as ``onset``).
        onset, duration: the stimulus window ``[onset, onset + duration)``.
        baseline_s: the baseline is ``[onset - baseline_s, onset)``.
        post_s: look at most this long after the window for persistence (``None``: to the end).
        threshold_sd: threshold = baseline mean + ``threshold_sd`` baseline standard deviations.

    Returns:
        ``baseline_mean``, ``baseline_sd``, ``threshold``, ``peak`` (max inside the window),
        ``intensity`` (peak minus baseline mean), ``persistence_s`` (time from the window's end until
        the trace first drops below the threshold; 0 if it is already below) and ``censored`` (the
        trace was still above threshold when the recording or ``post_s`` ran out). Values are
        ``None`` when the baseline or the window holds no frame.
    """
    trace = np.asarray(trace, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    end = onset + duration
    base = trace[(times >= onset - baseline_s) & (times < onset)]
    base = base[np.isfinite(base)]
    inside = trace[(times >= onset) & (times < end)]
    inside = inside[np.isfinite(inside)]
    out: dict[str, float | bool | None] = dict.fromkeys(
        ("baseline_mean", "baseline_sd", "threshold", "peak", "intensity", "persistence_s", "censored")
    )
    if len(base) == 0 or len(inside) == 0:
        return out
    mu, sd = float(base.mean()), float(base.std())
    thr = mu + threshold_sd * sd
    out.update(baseline_mean=mu, baseline_sd=sd, threshold=thr, peak=float(inside.max()))
    out["intensity"] = out["peak"] - mu
    stop = np.inf if post_s is None else end + post_s
    after = (times >= end) & (times < stop)
    t_after, v_after = times[after], trace[after]
    below = np.flatnonzero(~(v_after > thr))
    if len(t_after) == 0:
        out.update(persistence_s=0.0, censored=True)
    elif len(below) == 0:
        out.update(persistence_s=float(t_after[-1] - end), censored=True)
    else:
        out.update(persistence_s=float(max(t_after[below[0]] - end, 0.0)), censored=False)
    return out
