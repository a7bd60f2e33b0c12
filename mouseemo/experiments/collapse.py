"""Has a classifier collapsed onto one class? A check on its test predictions.

A model that calls (almost) every test frame the same class, e.g. ``neutral`` on a cohort where
neutral dominates the frame counts, can still show a plausible accuracy; :func:`collapse_of` names such
a row. It reads predicted labels only (an array, or the rows of ``test_predictions.csv``), so it
works for every model alike.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from mouseemo.errors import ConfigError, DataError

#: A row that predicts one class for at least this share of its test frames is collapsed.
COLLAPSE_SHARE = 0.95


@dataclass(frozen=True)
class Collapse:
    """The verdict on one set of predictions.

    Attributes:
        collapsed: the dominant class takes at least ``threshold`` of the predictions.
        dominant: the most frequent predicted class (``None`` without predictions).
        share: its share of the predictions (0 without predictions).
    """

    collapsed: bool
    dominant: str | int | None
    share: float

    def note(self) -> str:
        """``"one class: neutral (98%)"`` when collapsed, else ``""``."""
        return f"one class: {self.dominant} ({self.share:.0%})" if self.collapsed else ""


def collapse_of(predictions: Iterable, threshold: float = COLLAPSE_SHARE) -> Collapse:
    """Whether ``predictions`` put at least ``threshold`` of the frames in one class.

    Args:
        predictions: predicted labels (names or indices; a numpy array or any iterable), or rows of
            ``test_predictions.csv`` (mappings with a ``pred`` column).
        threshold: the share, in ``(0, 1]``, at which one class counts as a collapse.

    Returns:
        A :class:`Collapse`; no predictions are no collapse.

    Raises:
        ConfigError: ``threshold`` outside ``(0, 1]``.
        DataError: a row without a ``pred`` column.
    """
    if not 0.0 < float(threshold) <= 1.0:
        raise ConfigError(f"`threshold` must be in (0, 1]; got {threshold}")
    labels = []
    for p in predictions:
        if isinstance(p, Mapping):
            if "pred" not in p:
                raise DataError(f"a prediction row has no `pred` column (columns: {sorted(p)})")
            p = p["pred"]
        labels.append(p.item() if hasattr(p, "item") else p)
    if not labels:
        return Collapse(False, None, 0.0)
    dominant, count = Counter(labels).most_common(1)[0]
    share = count / len(labels)
    return Collapse(share >= threshold, dominant, share)


def collapse_of_file(path: str | Path, threshold: float = COLLAPSE_SHARE) -> Collapse | None:
    """:func:`collapse_of` the ``pred`` column of a ``test_predictions.csv``; ``None`` when the file
    does not exist."""
    path = Path(path)
    if not path.is_file():
        return None
    with open(path, newline="") as fh:
        return collapse_of(csv.DictReader(fh), threshold)


def folds_note(verdicts: Iterable[Collapse | None]) -> str:
    """The marker of a results row over one or more jobs (folds): ``""`` when none collapsed, the
    job's :meth:`Collapse.note` for a single job, else ``"one class: neutral in 4/6 folds"`` (the
    most frequent dominant class among the collapsed folds). Jobs without a verdict (``None``) count
    as folds that did not collapse."""
    verdicts = list(verdicts)
    hit = [v for v in verdicts if v is not None and v.collapsed]
    if not hit:
        return ""
    if len(verdicts) == 1:
        return hit[0].note()
    dominant = Counter(str(v.dominant) for v in hit).most_common(1)[0][0]
    return f"one class: {dominant} in {len(hit)}/{len(verdicts)} folds"


__all__ = ["COLLAPSE_SHARE", "Collapse", "collapse_of", "collapse_of_file", "folds_note"]
