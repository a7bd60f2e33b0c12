"""Trial-locked checkpoints on new videos: each frame against its own trial's pre-stimulus face.

Models trained with ``data.reference=trial`` (``model=trial_cnn``, ``trial_motion_cnn``,
``trial_diff_cnn``, ``trial_temporal_cnn``) see every frame beside a reference: the pixel-wise
median of its trial's frames before the stimulus (:func:`mouseemo.data.trials.trial_references`).
Scoring a new video reproduces that:

* the trials come from a ``trials.csv`` (``onset,duration,trigger``: exactly as in training), or
  from stimulus onsets alone (the non-neutral onsets of an events file, a live schedule, live
  triggers): trial ``k`` then starts ``trial_baseline_s`` seconds before onset ``k`` (the window
  the checkpoint recorded: the median ``trigger - onset`` of its training trials) and lasts until
  the next trial starts (:func:`~mouseemo.data.trials.trials_from_onsets`);
* a trial's reference is the rounded median of its frames before its trigger, cropped and resized
  as the model's input; frames stream past a ring buffer that holds the last pre-stimulus window;
* frames in no trial (before the first trial's window) and trials without a frame before their
  trigger get the session reference, the median of up to 300 frames spread over the video (the
  warm-up or ``--reference`` in ``mouseemo live``), as training gave them.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np
import torch

from mouseemo.data.events import Events, read_events
from mouseemo.data.trials import Trials, baseline_median, looks_like_trials, read_trials, trials_from_onsets
from mouseemo.data.video import VideoReader
from mouseemo.errors import ConfigError, DataError
from mouseemo.inference.scorers import CheckpointScorer, ScoreFn, Scorer

#: Frames the session reference of a trial-locked model is the median of (training's
#: :func:`~mouseemo.data.trials.trial_references` takes :func:`session_reference`'s default).
SESSION_REFERENCE_FRAMES = 300


class TrialReferences:
    """Each trial's pre-stimulus face, built from frames fed in time order, and each frame's reference.

    Trials are known up front (``trials``) or added as their stimuli happen (:meth:`add_onset`).
    The frames of the last ``window_s`` seconds (the longest pre-stimulus window) are kept in a ring
    buffer; a trial's reference is taken from it when the first frame at or after its trigger is
    fed (or at :meth:`finish`).

    Args:
        session: uint8 ``(H, W)`` session reference (frames in no trial).
        baseline_s: seconds before an onset added by :meth:`add_onset` that start its trial.
        trials: trials known in advance.
    """

    def __init__(self, session: np.ndarray, baseline_s: float | None = None, trials: Trials | None = None):
        self.session = np.asarray(session, dtype=np.uint8)
        self.baseline_s = baseline_s
        self.start: list[float] = []
        self.trigger: list[float] = []
        self.end: list[float] = []
        self.refs: list[np.ndarray | None] = []
        self.done: list[bool] = []
        self._open: list[int] = []  # trials whose reference is not taken yet
        self.ring: deque[tuple[float, np.ndarray]] = deque()
        self.latest = -np.inf
        self.window_s = float(baseline_s or 0.0)
        if trials is not None:
            order = np.argsort(trials.trigger, kind="stable")
            for k in order:
                self._add(trials.onset[k], trials.trigger[k], trials.onset[k] + trials.duration[k])

    def __len__(self) -> int:
        return len(self.start)

    def _add(self, start: float, trigger: float, end: float) -> None:
        self.start.append(float(start))
        self.trigger.append(float(trigger))
        self.end.append(float(end))
        self.refs.append(None)
        self.done.append(False)
        self._open.append(len(self.start) - 1)
        self.window_s = max(self.window_s, float(trigger) - float(start))
        if self.latest >= trigger:  # an onset added after frames past it were fed
            self._close(len(self.start) - 1)

    def add_onset(self, t: float) -> None:
        """A stimulus at ``t``: a trial from ``baseline_s`` before it until the next one starts.

        Raises:
            DataError: ``t`` is not finite, or not at least ``baseline_s`` after the previous onset.
        """
        if self.baseline_s is None:
            raise ConfigError("stimulus onsets alone need the model's pre-stimulus window (`baseline_s`)")
        t = float(t)
        if self.trigger:
            trials_from_onsets([self.trigger[-1], t], self.baseline_s, "trigger")  # checks the spacing
        elif not np.isfinite(t):
            raise DataError(f"trigger: onsets must be finite numbers; got {t}")
        start = t - self.baseline_s
        if self.end:
            self.end[-1] = min(self.end[-1], start)
        self._add(start, t, np.inf)

    def _close(self, k: int) -> None:
        sel = [f for t, f in self.ring if self.start[k] <= t < self.trigger[k]]
        self.refs[k] = baseline_median(np.stack(sel)) if sel else None
        self.done[k] = True
        self._open.remove(k)

    def feed(self, frames: np.ndarray, times: np.ndarray) -> None:
        """Frames ``(b, H, W)`` uint8 at ``times`` ``(b,)``, later than every frame fed before."""
        for f, t in zip(frames, np.asarray(times, dtype=np.float64)):
            for k in [k for k in self._open if self.trigger[k] <= t]:
                self._close(k)
            self.ring.append((float(t), f))
            self.latest = float(t)
            while self.ring and self.ring[0][0] < t - self.window_s:
                self.ring.popleft()

    def finish(self) -> None:
        """The stream ended: trials whose trigger no frame reached take the frames they have."""
        for k in [k for k in self._open if self.start[k] <= self.latest]:
            self._close(k)

    def trial_of(self, times: np.ndarray) -> np.ndarray:
        """``(T,)`` int64: the trial each time falls in (the later one where two overlap), -1 in none."""
        times = np.asarray(times, dtype=np.float64)
        out = np.full(len(times), -1, dtype=np.int64)
        for k in range(len(self.start)):
            out[(times >= self.start[k]) & (times < self.end[k])] = k
        return out

    def ready(self, t: float) -> bool:
        """Whether the reference of a frame at ``t`` is known (its trial's baseline is complete)."""
        k = int(self.trial_of(np.array([t]))[0])
        return k < 0 or self.done[k]

    def references(self, times: np.ndarray) -> np.ndarray:
        """uint8 ``(T, H, W)``: each frame's trial reference, or the session reference."""
        ks = self.trial_of(times)
        out = np.empty((len(ks), *self.session.shape), dtype=np.uint8)
        for i, k in enumerate(ks):
            ref = self.refs[k] if k >= 0 else None
            out[i] = self.session if ref is None else ref
        return out


class TrialScorer(CheckpointScorer):
    """A trial-locked checkpoint (``reference=trial``); see the module doc.

    Per video (:meth:`begin_video`) it needs the trials: ``trials`` (a ``trials.csv``) or
    ``events`` (their non-neutral onsets). In ``mouseemo live`` the references come with each frame
    (``score(frames, reference)``, :class:`~mouseemo.inference.live.trials.TrialGate`).
    """

    def __init__(self, loaded, device, margin: float | None = None) -> None:
        super().__init__(loaded, device, margin)
        self.reference_frames = SESSION_REFERENCE_FRAMES
        self.baseline_s: float | None = getattr(loaded, "trial_baseline_s", None)
        self.trial_refs: TrialReferences | None = None
        self._clock = None
        self._schedule: dict | None = None

    def _check_reference_kind(self) -> None:
        pass

    def schedule(self, trials: Trials | None, events: Events | None, what: str) -> Trials:
        """The trials of ``what`` (a video): ``trials`` as they are, else ``events``' stimulus onsets.

        Raises:
            ConfigError: neither is given, or onsets alone and the checkpoint records no window.
        """
        if trials is not None:
            return trials
        if events is None:
            raise ConfigError(
                f"{self.path} is a trial-locked model (reference=trial): give the stimulus onsets of "
                f"{what} with `events` (an events.csv, or a trials.csv: onset,duration,trigger), or "
                "put the session's trials.csv beside it"
            )
        # in the file's order: onsets out of order are an error, not sorted silently
        onsets = [o for o, label in zip(events.onset, events.label) if label != "neutral"]
        return trials_from_onsets(onsets, self.require_baseline(), events.source or what)

    def require_baseline(self) -> float:
        if self.baseline_s is None:
            raise ConfigError(
                f"{self.path} does not record its pre-stimulus window (written before mouseemo recorded "
                "it): give trials as onset,duration,trigger (a trials.csv), or train it again"
            )
        return self.baseline_s

    def begin_video(
        self, vr, num_frames: int | None = None, *, clock=None, events: Events | None = None, trials=None
    ) -> None:
        """The session reference and every trial's reference of this video (one extra decoding pass
        up to the last trigger, keeping only the frames of pre-stimulus windows)."""
        trials = self.schedule(trials, events, str(vr.path))
        super().begin_video(vr, num_frames)
        clock = clock or vr.clock()
        n = num_frames if num_frames is not None else (vr.frame_count_hint or vr.num_frames)
        t_first, t_last = float(clock.at(0, 1)[0]), float(clock.at(n - 1, 1)[0])
        bad = (trials.trigger < t_first) | (trials.trigger > t_last)
        if bad.any():
            raise DataError(
                f"{trials.source or 'trials'}: stimulus onset {trials.trigger[bad][0]:g} s is outside "
                f"{vr.path} ({t_first:g} to {t_last:g} s)"
            )
        session = self._reference[0, 0].cpu().numpy()
        refs = TrialReferences(session, self.baseline_s, trials)
        last = max(refs.trigger)
        with VideoReader(vr.path, crop=vr.crop, timestamps=None) as pass1:
            for start, frames in pass1.iter_chunks(256):
                t = clock.at(start, len(frames))
                base = np.zeros(len(t), dtype=bool)
                for s0, s1 in zip(refs.start, refs.trigger):
                    base |= (t >= s0) & (t < s1)
                if base.any():
                    refs.feed(self.prepare(frames[base]), t[base])
                if t[-1] >= last:
                    break
        refs.latest = max(refs.latest, t_last)
        refs.finish()
        self.trial_refs, self._clock = refs, clock
        self._schedule = {
            "source": trials.source or None,
            "trials": len(refs),
            "baseline_s": self.baseline_s,
            "without_baseline_frames": int(sum(r is None for r in refs.refs)),
        }

    def stream(self) -> ScoreFn:
        inner = super().stream()
        seen = [0]

        def score(x: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
            if reference is None and self.trial_refs is not None:
                t = self._clock.at(seen[0], len(x))
                reference = torch.from_numpy(self.trial_refs.references(t)).to(x.device)
            seen[0] += len(x)
            return inner(x, reference)

        return score

    def describe(self) -> dict:
        out = super().describe()
        out["reference"] = {
            "kind": "trial",
            "session_frames": self.reference_frames,
            "baseline_s": self.baseline_s,
            "frames_in_no_trial": "scored against the session reference, as in training",
            **({"schedule": self._schedule} if self._schedule else {}),
        }
        return out


def stimulus_inputs(item, scorer: Scorer) -> tuple[Events | None, Trials | None]:
    """The events (per-stimulus readouts) and trials (trial-locked models) of a predict input.

    ``item.events`` may be a ``trials.csv`` (it has a ``trigger`` column): trial-locked models take
    their trials from it; other models read ``events.csv`` files only.

    Raises:
        ConfigError: a trials file for a model that does not use trials.
    """
    path: Path | None = item.events
    trials_path: Path | None = getattr(item, "trials", None)
    if path is not None and looks_like_trials(path):
        if not isinstance(scorer, TrialScorer):
            raise ConfigError(
                f"`events` {path} is a trials file (onset,duration,trigger), which only trial-locked "
                "models use; this model reads an events.csv (onset,duration,label[,value])"
            )
        return None, read_trials(path)
    events = read_events(path) if path is not None else None
    trials = read_trials(trials_path) if trials_path is not None and isinstance(scorer, TrialScorer) else None
    return events, trials


__all__ = ["SESSION_REFERENCE_FRAMES", "TrialReferences", "TrialScorer", "stimulus_inputs"]
