"""Scoring correlates against the ground truth of synthetic sessions (``truth/neurons.csv``)."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from mouseemo.analysis.correlates import CorrelatesResult
from mouseemo.constants import EMOTIONS
from mouseemo.errors import DataError
from mouseemo.utils.io import read_user_text


def read_truth_neurons(path: str | os.PathLike) -> dict[int, dict[str, str]]:
    """``truth/neurons.csv`` as ``{neuron: row}`` (columns ``neuron, preferred, driver, is_cell, ...``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"truth file not found: {path}")
    with io.StringIO(read_user_text(path), newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"neuron", "preferred"} <= set(reader.fieldnames):
            raise DataError(f"{path}: needs columns neuron,preferred,...")
        try:
            return {int(row["neuron"]): row for row in reader}
        except ValueError as err:
            raise DataError(f"{path}: non-integer neuron id ({err})") from None


def _truth_emotions(row: dict[str, str]) -> set[str]:
    """Emotions that drive a truth neuron: its own, or the pair of a ``mixed`` one (from ``driver``)."""
    pref = row["preferred"]
    if pref in EMOTIONS:
        return {pref}
    if pref == "mixed":
        return {part.split(":")[0] for part in (row.get("driver") or "").split("+") if part}
    return set()


def compare_with_truth(result: CorrelatesResult, truth: dict[int, dict[str, str]]) -> dict:
    """Score detected neurons against the synthetic ground truth.

    A truth neuron is *selective* when an emotion drives its rate: ``preferred`` is an emotion, or
    ``mixed`` (two emotions, named in ``driver``). Movement-driven and untuned neurons are not.

    Returns:
        ``precision`` (selective among significant), ``recall`` (significant among selective),
        ``agreement`` (detected selective neurons whose preferred emotion is theirs, or one of a mixed
        neuron's two), ``agreement_single`` (single-emotion neurons only), and counts per truth class.
    """
    missing = [int(i) for i in result.neuron_ids if int(i) not in truth]
    if missing:
        raise DataError(f"neurons {missing[:5]} are not in the truth file (a different session?)")
    rows = [truth[int(i)] for i in result.neuron_ids]
    drives = [_truth_emotions(row) for row in rows]
    selective = np.array([bool(d) for d in drives])
    single = np.array([row["preferred"] in EMOTIONS for row in rows])
    sig = np.asarray(result.significant, dtype=bool)
    pref = result.preferred
    agree = np.array([pref[i] in drives[i] for i in range(len(rows))])
    tp = int((sig & selective).sum())
    per_class: dict[str, dict[str, int]] = {}
    for i, row in enumerate(rows):
        c = per_class.setdefault(row["preferred"], {"neurons": 0, "significant": 0, "agree": 0})
        c["neurons"] += 1
        c["significant"] += int(sig[i])
        c["agree"] += int(sig[i] and agree[i])

    def ratio(a: int, b: int) -> float:
        return float(a / b) if b else float("nan")

    return {
        "num_neurons": len(rows),
        "num_selective": int(selective.sum()),
        "num_significant": int(sig.sum()),
        "true_positives": tp,
        "precision": ratio(tp, int(sig.sum())),
        "recall": ratio(tp, int(selective.sum())),
        "agreement": ratio(int((sig & selective & agree).sum()), tp),
        "agreement_single": ratio(int((sig & single & agree).sum()), int((sig & single).sum())),
        "per_truth_class": per_class,
    }
