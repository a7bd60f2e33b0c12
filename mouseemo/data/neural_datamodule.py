"""LightningDataModule of face-video windows paired with two-photon activity on the camera clock.

Each sample is ``T`` consecutive camera frames and the population activity resampled onto those
frames' times (linear interpolation of the imaging clock, after an explicit ``lag_s``). Only frames
inside the camera/imaging overlap are used; windows never straddle two splits.

Batches are dicts: ``frames`` ``(B,T,1,H,W)`` uint8, ``neural`` ``(B,T,N)`` float32 (z-scored per
neuron), ``label`` ``(B,)`` (the label of each window's last frame), ``t_cam`` ``(B,T)``,
``t_neural`` ``(B,T)`` (imaging-clock times that were sampled), ``num_neurons`` ``(B,)``, ``animal``,
``session``. Sessions with fewer neurons than the widest one are zero-padded to its ``N``
(``num_neurons`` says how many columns are real). Windows never span a dropped camera frame.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from mouseemo.constants import EMOTIONS
from mouseemo.data.clock_alignment import align_clocks
from mouseemo.data.events import IGNORE_INDEX
from mouseemo.data.face_datamodule import FaceFramesDataModule
from mouseemo.data.frame_dataset import SessionFrames, SessionFramesDataset
from mouseemo.data.imaging import DFF_WINDOW_S, load_activity
from mouseemo.data.splits import STAGES, save_splits
from mouseemo.data.sync import resample
from mouseemo.errors import ConfigError, DataError

log = logging.getLogger(__name__)


@dataclass
class SessionActivity:
    """Activity of one session on its camera clock."""

    neural: np.ndarray  # (T_cam, N) float32, z-scored; NaN outside the clock overlap
    valid: np.ndarray  # (T_cam,) bool: camera frames inside the overlap
    neuron_ids: np.ndarray  # (N,) source ROI indices
    mean: np.ndarray | None = None  # (N,) z-score statistics, when z-scored
    std: np.ndarray | None = None


def activity_on_camera_clock(
    sf: SessionFrames,
    signal: str,
    lag_s: float,
    fs: float | None,
    min_overlap_s: float,
    dff_window_s: float = DFF_WINDOW_S,
) -> SessionActivity:
    """Load a session's activity and resample it onto its camera frame times.

    dF/F is :func:`mouseemo.data.imaging.dff` with its baseline window ``dff_window_s`` (the one
    convention, :data:`~mouseemo.data.imaging.DFF_WINDOW_S`, unless a caller overrides it).
    """
    session = sf.session
    if session.suite2p is None:
        raise DataError(f"{session.path}: no suite2p/plane0 folder for the neural side")
    if session.imaging_timestamps is None:
        raise DataError(
            f"{session.path}: imaging_timestamps.csv is missing; cannot align imaging to the camera"
        )
    fs = fs or session.meta.get("imaging_fs")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*fs.*")
        act = load_activity(
            session.path, signal=signal, fs=fs, dff_kw={"window_s": dff_window_s} if signal == "dff" else None
        )
    align = align_clocks(sf.times, act.t, lag_s=lag_s, min_overlap_s=min_overlap_s)
    neural = resample(act.traces, act.t + lag_s, sf.times, method="linear", axis=1).T.astype(np.float32)
    valid = np.zeros(len(sf.times), dtype=bool)
    valid[align.cam_idx] = True
    valid &= np.isfinite(neural).all(axis=1)
    return SessionActivity(neural=neural, valid=valid, neuron_ids=act.neuron_ids)


def spans_gap(times: np.ndarray, window: int) -> np.ndarray:
    """Per window start: does the window of ``window`` frames span a dropped frame?"""
    dt = np.diff(times)
    gap = dt > 1.5 * np.median(dt) if len(dt) else np.zeros(0, bool)
    csum = np.concatenate([[0], np.cumsum(gap)])
    return (csum[window - 1 :] - csum[: len(csum) - window + 1]) > 0


def zscore_activity(
    neural: np.ndarray,
    valid: np.ndarray,
    ref: np.ndarray | None = None,
    mean: np.ndarray | None = None,
    std: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z-score each neuron of ``neural`` ``(T, N)``: with ``mean`` / ``std`` when given (a trained
    model's statistics), else over the ``ref`` frames (default: the ``valid`` ones); frames not
    ``valid`` become 0.

    Returns:
        ``(z (T, N), mean (N,), std (N,))``, float32.
    """
    if mean is None or std is None:
        rows = neural[valid if ref is None else ref]
        mean, std = rows.mean(0), np.maximum(rows.std(0), 1e-6)
    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    z = np.where(valid[:, None], (neural - mean) / std, 0.0).astype(np.float32)
    return z, mean, std


def full_windows(ok: np.ndarray, times: np.ndarray, window: int, skip_gaps: bool = True) -> np.ndarray:
    """Per window start, ``(T - window + 1,)`` bool (empty when ``T < window``): are all ``window``
    frames from it ``ok``, and (with ``skip_gaps``) free of a dropped frame?"""
    # a sliding minimum over ok
    csum = np.concatenate([[0], np.cumsum(ok)])
    full = (csum[window:] - csum[:-window]) == window if len(ok) >= window else np.zeros(0, bool)
    if skip_gaps and len(full) and window > 1:
        full &= ~spans_gap(times, window)
    return full


def misalign(
    neural: np.ndarray, valid: np.ndarray, times: np.ndarray, shift_s: float, window: int, name: str = ""
) -> np.ndarray:
    """The activity circularly shifted by ``shift_s`` seconds against the camera (the control).

    The rows of the ``valid`` frames are rolled among themselves by ``round(shift_s * rate)`` frames
    (rate: the camera's median frame rate); other rows are left as they are.

    Raises:
        ConfigError: the shift, taken modulo the valid frames, is within one window of no shift.
    """
    idx = np.flatnonzero(valid)
    rate = 1.0 / float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    shift = int(round(shift_s * rate)) % max(len(idx), 1)
    if min(shift, len(idx) - shift) < window:
        raise ConfigError(
            f"data.misalign_s={shift_s:g} shifts session {name} by {shift} of its {len(idx)} valid "
            f"frames: within one window ({window} frames) of the true alignment; choose another value"
        )
    out = neural.copy()
    out[idx] = neural[np.roll(idx, -shift)]
    return out


class WindowDataset(SessionFramesDataset):
    """Windows of ``T`` frames plus activity; memmaps open lazily in each worker."""

    def __init__(self, sessions, activity, index, labels, window: int, lag_s: float, neural=None) -> None:
        self._init_sessions(sessions)
        self.neural = list(neural) if neural is not None else [a.neural for a in activity]
        self.index = index  # (M, 2): session, first frame
        self.labels = labels
        self.window = window
        self.lag_s = lag_s
        self.width = max((a.neural.shape[1] for a in activity), default=0)  # zero-padded to this

    def __getitem__(self, i: int) -> dict:
        s, f = (int(v) for v in self.index[i])
        sl = slice(f, f + self.window)
        frames = np.array(self._open()[s][sl], dtype=np.uint8)
        t = self.times[s][sl]
        neural = np.ascontiguousarray(self.neural[s][sl])
        num = neural.shape[1]
        if num < self.width:
            neural = np.pad(neural, ((0, 0), (0, self.width - num)))
        return {
            "frames": torch.from_numpy(frames)[:, None],
            "neural": torch.from_numpy(neural),
            "num_neurons": torch.tensor(num, dtype=torch.long),
            "label": torch.tensor(int(self.labels[i]), dtype=torch.long),
            "t_cam": torch.from_numpy(t.copy()),
            "t_neural": torch.from_numpy(t - self.lag_s),
            **self._where(s, f),
        }


class FaceNeuralDataModule(FaceFramesDataModule):
    """Face windows with simultaneous two-photon activity.

    Args (beyond :class:`FaceFramesDataModule`'s):
        window: camera frames per sample (``T``).
        window_stride: frames between consecutive training windows (val/test use ``eval_stride``).
        signal: ``"dff"``, ``"spks"``, ``"F"`` or ``"corrected"``.
        lag_s: seconds added to the imaging clock before pairing (neural activity that follows the
            face by ``lag_s`` pairs with the earlier frame when negative).
        dff_window_s: dF/F baseline window in seconds (:data:`mouseemo.data.imaging.DFF_WINDOW_S`).
        imaging_fs: imaging frame rate override (Suite2p's ``ops['fs']`` is often the default 1 Hz).
        min_overlap_s: shortest acceptable camera/imaging overlap per session.
        zscore: z-score each neuron with its session's training-split statistics (all valid frames
            when the session has no training frames, as for held-out animals).
        skip_gaps: leave out windows that span a dropped camera frame (an interval longer than 1.5
            nominal frame intervals), so every window is evenly sampled in time.
        misalign_s: the training-time control. When > 0, the training windows (and only they) pair
            each camera frame with the activity ``misalign_s`` seconds later, circularly within each
            session's valid frames (:func:`misalign`): the neural stream keeps its own statistics
            but loses its alignment with the face. Validation and test windows keep the true
            alignment, so a model trained this way must fall to chance on them.

    Sessions without imaging are skipped with a warning. With ``split.kind="animals"`` every session
    must have the same number of neurons; the default split is ``"time"``.
    """

    def __init__(
        self,
        *args,
        window: int = 8,
        window_stride: int = 4,
        signal: str = "dff",
        lag_s: float = 0.0,
        dff_window_s: float = DFF_WINDOW_S,
        imaging_fs: float | None = None,
        min_overlap_s: float = 10.0,
        zscore: bool = True,
        skip_gaps: bool = True,
        misalign_s: float = 0.0,
        **kwargs,
    ) -> None:
        kwargs.setdefault("split", {"kind": "time"})
        super().__init__(*args, **kwargs)
        if window < 1 or window_stride < 1:
            raise ConfigError("window and window_stride must be >= 1")
        if misalign_s is not None and misalign_s < 0:
            raise ConfigError(f"data.misalign_s must be >= 0 (0: the true alignment); got {misalign_s}")
        self.activity: list[SessionActivity] = []

    @property
    def num_neurons(self) -> int:
        return int(self.activity[0].neural.shape[1]) if self.activity else 0

    @property
    def session_neurons(self) -> dict[str, int]:
        """``{"animal/session": neurons}`` of every session with imaging."""
        return {sf.name: int(a.neural.shape[1]) for sf, a in zip(self.sessions, self.activity)}

    def reference_dataloader(self, stage: str = "train"):
        """The ``stage`` windows in order, not shuffled (e.g. to fit decoders on training data)."""
        return self._loader(stage, shuffle=False)

    def _build_datasets(self) -> None:
        hp = self.hparams
        kept_sessions, activity = [], []
        for sf in self.sessions:
            if sf.session.suite2p is None:
                warnings.warn(
                    f"{sf.session.path}: no imaging; left out of the face+neural data", stacklevel=2
                )
                continue
            kept_sessions.append(sf)
            activity.append(
                activity_on_camera_clock(
                    sf, hp.signal, hp.lag_s, hp.imaging_fs, hp.min_overlap_s, hp.dff_window_s
                )
            )
        if not kept_sessions:
            raise DataError(f"no session under {self.root} has two-photon data (suite2p/plane0)")
        counts = {a.neural.shape[1] for a in activity}
        if len(counts) > 1 and self.spec.kind == "animals":
            raise ConfigError(
                f"sessions have different numbers of neurons {sorted(counts)}; use split.kind=time "
                "(one model per session) or sessions recorded from the same population"
            )
        self.sessions, self.activity = kept_sessions, activity
        if hp.zscore:
            for sf, act in zip(self.sessions, self.activity):
                ref = act.valid & self.masks[sf.name]["train"]
                if not ref.any():
                    ref = act.valid
                act.neural, act.mean, act.std = zscore_activity(act.neural, act.valid, ref)
        win = int(hp.window)
        shifted = None
        if hp.get("misalign_s"):
            shifted = [
                misalign(act.neural, act.valid, sf.times, float(hp.misalign_s), win, sf.name)
                for sf, act in zip(self.sessions, self.activity)
            ]
        for stage in STAGES:
            stride = hp.window_stride if stage == "train" else hp.eval_stride
            idx, labs = [], []
            for k, (sf, act) in enumerate(zip(self.sessions, self.activity)):
                ok = act.valid & self.masks[sf.name][stage]
                # a window is usable when all of its frames are usable
                full = full_windows(ok, sf.times, win, hp.skip_gaps)
                starts = np.flatnonzero(full)[::stride]
                lab = sf.labels[starts + win - 1] if len(starts) else np.zeros(0, np.int64)
                keep = lab != IGNORE_INDEX
                starts, lab = starts[keep], lab[keep]
                idx.append(np.stack([np.full(len(starts), k), starts], axis=1))
                labs.append(lab)
            index = np.concatenate(idx).astype(np.int64)
            labels = np.concatenate(labs).astype(np.int64)
            self.datasets[stage] = WindowDataset(
                self.sessions, self.activity, index, labels, win, hp.lag_s,
                neural=shifted if stage == "train" else None,
            )  # fmt: skip
        if len(self.datasets["train"]) == 0:
            raise DataError(f"no training windows of {win} frames in {self.root}")
        self.class_counts = np.bincount(
            self.datasets["train"].labels[self.datasets["train"].labels >= 0], minlength=len(EMOTIONS)
        )
        if hp.output_dir:
            from pathlib import Path

            save_splits(
                Path(hp.output_dir) / "splits.json",
                self.masks,
                self.spec,
                {"root": str(self.root), "window": win, "lag_s": hp.lag_s, "signal": hp.signal},
            )
