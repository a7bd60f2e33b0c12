"""Scores inside the stimulus window: what a model says where timing alone cannot help.

In sessions of trials (``trials.csv``) whose stimulus windows sit at a fixed phase of the trial, a
rule that calls every frame of that phase a stimulus frame scores well without reading the animal
(the ``timing_phase`` rule). :func:`window_metrics` scores a job's test predictions only on the frames
at the stimulus phase of *every* trial, sham trials included: there every trial is at the same phase,
and only what differs between a stimulus and a sham trial can separate them. Timing alone sits at
chance there.

The stimulus phase is read from the session's own files: each stimulus window of ``events.csv``
(a label other than the first class), taken relative to the trigger of the trial it starts in.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from mouseemo.data.events import read_events
from mouseemo.data.session import Session
from mouseemo.data.trials import TRIALS_FILE, read_trials


def _phase_windows(session: Session, baseline: str) -> tuple[object, list[tuple[float, float]]] | None:
    """The session's trials and its stimulus windows relative to their trial's trigger, or ``None``
    when it has no trials.csv, no events.csv or no stimulus window inside a trial."""
    trials_path, events_path = session.path / TRIALS_FILE, session.path / "events.csv"
    if not (trials_path.is_file() and events_path.is_file()):
        return None
    trials = read_trials(trials_path)
    events = read_events(events_path)
    phases = set()
    for onset, end, label in zip(events.onset, events.end, events.label):
        if label == baseline:
            continue
        k = int(trials.index_of(np.array([onset]))[0])
        if k >= 0:
            t0 = float(trials.trigger[k])
            phases.add((round(float(onset) - t0, 6), round(float(end) - t0, 6)))
    return (trials, sorted(phases)) if phases else None


def window_metrics(predictions: str | Path, sessions: list[Session], classes: list[str]) -> dict[str, float]:
    """``{"test/window_macro_f1", "test/window_frames"}`` of a job's ``test_predictions.csv``, on the
    frames at the stimulus phase of every trial of its test sessions; ``{}`` when no test session has
    trials with stimulus windows (or the file is absent)."""
    predictions = Path(predictions)
    if not predictions.is_file() or len(classes) < 2:
        return {}
    by_name = {(s.animal, s.session): s for s in sessions}
    rows: dict[tuple[str, str], list[tuple[float, str, str]]] = defaultdict(list)
    with open(predictions, newline="") as fh:
        for r in csv.DictReader(fh):
            if r["label"]:
                rows[(r["animal"], r["session"])].append((float(r["time_s"]), r["label"], r["pred"]))
    labels, preds = [], []
    for key, items in rows.items():
        session = by_name.get(key)
        found = _phase_windows(session, classes[0]) if session is not None else None
        if found is None:
            continue
        trials, phases = found
        times = np.array([t for t, _, _ in items])
        which = trials.index_of(times)
        since = np.where(which >= 0, times - trials.trigger[np.maximum(which, 0)], np.nan)
        inside = np.zeros(len(times), dtype=bool)
        for lo, hi in phases:
            inside |= (which >= 0) & (since >= lo - 1e-6) & (since < hi - 1e-6)
        labels += [items[i][1] for i in np.flatnonzero(inside)]
        preds += [items[i][2] for i in np.flatnonzero(inside)]
    if not labels:
        return {}
    from sklearn.metrics import f1_score

    scored = sorted(set(labels) | set(preds))  # as every table: the classes present or predicted
    f1 = f1_score(labels, preds, labels=scored, average="macro", zero_division=0)
    return {"test/window_macro_f1": float(f1), "test/window_frames": float(len(labels))}
