"""Face-free rules: what a classifier could score without reading a face.

Every real result is put beside the simplest explanations that read no facial expression. Each rule
turns a frame into one number and calls it the stimulus class when the number falls inside an
interval ``[low, high)`` fitted on the training animals (the interval that maximises macro-F1 on the
training frames); the test animals are scored with that interval unchanged. They run as benchmark
models (``conf/model/timing*.yaml``, ``pixel_change_*.yaml``), on the same frames, folds and label
controls as every other model.

* ``pixel_change`` with ``reference=trial`` (``pixel_change_trial``): the mean absolute pixel change
  of the frame from the median of its own trial's pre-stimulus frames (``trials.csv``). Any movement
  after the stimulus counts, whatever moved. Stimulus-locked: it needs the onsets.
* ``pixel_change`` with ``reference=median`` (``pixel_change_session``): the change from the session's
  median frame. No stimulus log at test time (log-free).
* ``timing`` with ``clock=trials`` (``timing_phase``): the time since the trigger of the frame's trial
  (``trials.csv``, sham trials included: what a stimulus-locked model is given). It reads no pixel:
  it is what the trial layout alone gives.
* ``timing`` with ``clock=events`` (``timing``): 1 inside a stimulus window of ``events.csv`` (the
  stimulus log: which trials were shocks, and when), else 0. When the labels are those windows, as in
  the tail-shock sessions, it returns them exactly: the ceiling of what the log gives.

The rules separate two classes (``data.classes`` of two names, the first the baseline class).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mouseemo.data.events import read_events
from mouseemo.data.trials import session_trials
from mouseemo.errors import ConfigError, DataError
from mouseemo.models.hog_features import HogFeatureModule

RULES = ("pixel_change", "timing")
CLOCKS = ("trials", "events")
#: At most this many candidate edges (quantiles of the training values) for the fitted interval.
MAX_EDGES = 400


def fit_interval(values: np.ndarray, positive: np.ndarray) -> tuple[float, float, float]:
    """The interval ``[low, high)`` of ``values`` whose frames, called positive, give the highest
    macro-F1 (mean of the positive and negative classes' F1) against ``positive``.

    Edges are the distinct values (or ``MAX_EDGES`` quantiles of them) and ``±inf``; ties go to the
    first interval found (lowest ``low``, then lowest ``high``).

    Returns:
        ``(low, high, macro-F1 on these frames)``.
    """
    values = np.asarray(values, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    if len(values) != len(positive) or not len(values):
        raise DataError(
            f"fit_interval needs as many labels as values (>0); got {len(values)}, {len(positive)}"
        )
    if np.isnan(values).any():
        raise DataError("fit_interval: the rule's values hold NaN")
    uniq = np.unique(values)
    if len(uniq) > MAX_EDGES:
        uniq = np.unique(np.quantile(values, np.linspace(0, 1, MAX_EDGES)))
    edges = np.concatenate([[-np.inf], uniq, [np.inf]])
    # counts of positives / negatives with value < edge
    order = np.sort(values[positive]), np.sort(values[~positive])
    pos_below = np.searchsorted(order[0], edges, side="left").astype(np.float64)
    neg_below = np.searchsorted(order[1], edges, side="left").astype(np.float64)
    n_pos, n_neg = float(positive.sum()), float((~positive).sum())
    tp = pos_below[None, :] - pos_below[:, None]  # [i, j]: interval [edges[i], edges[j])
    fp = neg_below[None, :] - neg_below[:, None]
    fn, tn = n_pos - tp, n_neg - fp
    with np.errstate(invalid="ignore", divide="ignore"):
        f1_pos = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        f1_neg = np.where(2 * tn + fn + fp > 0, 2 * tn / (2 * tn + fn + fp), 0.0)
    macro = (f1_pos + f1_neg) / 2
    macro[np.tril_indices(len(edges))] = -1.0  # only low < high
    i, j = np.unravel_index(int(np.argmax(macro)), macro.shape)
    return float(edges[i]), float(edges[j]), float(macro[i, j])


class FaceFreeRuleModule(HogFeatureModule):
    """A face-free rule (see the module docs) with the benchmark's one-pass fit and test outputs.

    Args:
        rule: ``"pixel_change"`` or ``"timing"``.
        reference: for ``pixel_change``, ``"trial"`` or ``"median"`` (``data.reference`` follows).
        clock: for ``timing``, ``"trials"`` (time since the trial's trigger) or ``"events"`` (inside a
            stimulus window of ``events.csv``).
        classes: two class names, the baseline class first.
    """

    score_prefix = "rule"
    neutral_modes = ("training",)

    def __init__(
        self,
        rule: str = "pixel_change",
        reference: str | None = "trial",
        clock: str = "trials",
        classes: Sequence[str] = ("neutral", "pain"),
    ) -> None:
        super().__init__(classes=classes)
        self.save_hyperparameters(logger=False)
        if rule not in RULES:
            raise ConfigError(f"model.rule must be one of {list(RULES)}; got {rule!r}")
        if rule == "pixel_change" and reference not in ("trial", "median"):
            raise ConfigError(
                f"model.reference of a pixel_change rule must be trial or median; got {reference!r}"
            )
        if rule == "timing" and clock not in CLOCKS:
            raise ConfigError(f"model.clock must be one of {list(CLOCKS)}; got {clock!r}")
        if len(self.classes) != 2:
            raise ConfigError(
                f"a face-free rule separates two classes (data.classes=[neutral,<stimulus class>]); got {self.classes}"
            )
        self.rule = rule
        self.reference = reference if rule == "pixel_change" else None
        self.clock = clock
        self.interval: tuple[float, float] | None = None
        self._clock_values: dict[str, np.ndarray] = {}

    @property
    def is_fitted(self) -> bool:
        return self.interval is not None

    def score_names(self) -> list[str]:
        return ["value"]

    # -- the rule's number per frame --------------------------------------------------------------
    def batch_features(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        images = batch["image"]
        if self.rule == "pixel_change":
            if "reference" not in batch:
                raise ConfigError("a pixel_change rule needs data.reference (trial or median) in its items")
            diff = (images.float() - batch["reference"].float()).abs() / 255.0
            return images, diff.flatten(1).mean(dim=1, keepdim=True)
        groups = [f"{a}/{s}" for a, s in zip(batch["animal"], batch["session"])]
        values = [self._clock_of(g)[int(f)] for g, f in zip(groups, batch["frame"])]
        return images, torch.tensor(values, dtype=torch.float32, device=images.device)[:, None]

    def _clock_of(self, group: str) -> np.ndarray:
        """Per frame of session ``group``: the time since its trial's trigger (negative before it,
        ``-1e6`` outside every trial), or 1/0 inside/outside a stimulus window."""
        if group not in self._clock_values:
            dm = self._datamodule("a timing rule")
            by_name = {sf.name: sf for sf in dm.sessions}
            if group not in by_name:
                raise DataError(f"no session {group} among the datamodule's sessions")
            sf = by_name[group]
            times = np.asarray(sf.times, dtype=np.float64)
            if self.clock == "trials":
                trials = session_trials(sf.session.path, "the timing rule (model.clock=trials)")
                which = trials.index_of(times)
                since = np.full(len(times), -1e6)
                inside = which >= 0
                since[inside] = times[inside] - trials.trigger[which[inside]]
                self._clock_values[group] = since
            else:
                path = sf.session.path / "events.csv"
                if not path.is_file():
                    raise DataError(
                        f"{sf.session.path}: the timing rule (model.clock=events) needs events.csv"
                    )
                events = read_events(path)
                stimulus = sorted({lab for lab in events.label if lab != self.classes[0]})
                mask = np.zeros(len(times), dtype=bool)
                for label in stimulus:
                    mask |= events.window_mask(times, label)
                self._clock_values[group] = mask.astype(np.float64)
        return self._clock_values[group]

    # -- fit and score ----------------------------------------------------------------------------
    def _fit(self, data: dict[str, np.ndarray]) -> None:
        values = data["features"][:, 0]
        positive = data["label"] == 1
        if positive.all() or not positive.any():
            raise DataError(
                f"the training frames hold only one class of {self.classes}: no rule can be fitted"
            )
        low, high, _ = fit_interval(values, positive)
        self.interval = (low, high)

    def _scores(
        self, feats: torch.Tensor, groups: Sequence[str] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        low, high = self.interval  # type: ignore[misc]
        value = feats[:, 0].double()
        preds = ((value >= low) & (value < high)).long()
        return feats[:, :1].float(), preds

    def predict_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        raise ConfigError(
            "face-free rules are benchmark baselines: they score the sessions of a benchmark, not videos"
        )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.interval is not None:
            checkpoint["face_free_rule"] = {"interval": list(self.interval), "frame_size": self.frame_size}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("face_free_rule")
        if state is not None:
            self.interval = tuple(float(v) for v in state["interval"])  # type: ignore[assignment]
            self.frame_size = tuple(state["frame_size"]) if state.get("frame_size") else None
