"""Suite2p planes: F, Fneu, spks, iscell, stat and ops, loaded without running pickled code."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from mouseemo.data.imaging.dff import DFF_PERCENTILE, DFF_WINDOW_S, dff
from mouseemo.data.imaging.rois import roi_masks_from_stat
from mouseemo.data.imaging.traces import SIGNALS, ActivityTraces, NeuronsByFrames
from mouseemo.errors import ConfigError, DataError
from mouseemo.utils import safe_pickle

SUITE2P_FILES = ("F.npy", "Fneu.npy", "spks.npy", "iscell.npy", "stat.npy", "ops.npy")


@dataclass
class Suite2pRecording(NeuronsByFrames):
    """One Suite2p plane, filtered to the ROIs asked for.

    Attributes:
        F, Fneu, spks: fluorescence, neuropil and deconvolved activity, float32 ``(N, T)``.
        iscell: cell label of each kept ROI (after the ``cell_prob`` threshold when one was given).
        cell_prob: classifier probability of each kept ROI.
        fs: frame rate in Hz (None when not recorded).
        stat: per-ROI dicts (``ypix``, ``xpix``, ``lam``, ``med``, ...) of the kept ROIs.
        ops: Suite2p's run options (includes mean images).
        neuron_ids: original ROI index of each kept row.
        Ly, Lx: field of view in pixels.
        neuropil_coef: coefficient used by :meth:`corrected` and :meth:`dff`.
        folder: the ``plane`` folder read.

    Shape:
        F, Fneu, spks: ``(N, T)``; iscell, cell_prob, neuron_ids: ``(N,)``.
    """

    F: np.ndarray
    Fneu: np.ndarray
    spks: np.ndarray
    iscell: np.ndarray
    cell_prob: np.ndarray
    fs: float | None
    stat: list[dict]
    ops: dict
    neuron_ids: np.ndarray
    Ly: int | None
    Lx: int | None
    neuropil_coef: float = 0.7
    folder: Path | None = None

    _activity = "F"

    def corrected(self) -> np.ndarray:
        """Neuropil-corrected fluorescence ``F - neuropil_coef * Fneu`` (float32 ``(N, T)``)."""
        return (self.F - np.float32(self.neuropil_coef) * self.Fneu).astype(np.float32)

    def dff(
        self,
        method: str = "percentile",
        window_s: float = DFF_WINDOW_S,
        percentile: float = DFF_PERCENTILE,
        **kw,
    ) -> np.ndarray:
        """ΔF/F₀ of the neuropil-corrected trace; see :func:`dff` (float32 ``(N, T)``).

        Raises:
            ConfigError: the frame rate is unknown (pass ``fs=`` to :func:`load_suite2p`).
        """
        if self.fs is None:
            raise ConfigError(f"{self.folder}: frame rate unknown; pass fs= to load_suite2p")
        return dff(
            self.F,
            self.fs,
            method=method,
            window_s=window_s,
            percentile=percentile,
            Fneu=self.Fneu,
            neuropil_coef=self.neuropil_coef,
            **kw,
        )

    def masks(self, weighted: bool = True) -> sp.csr_matrix:
        """ROI masks of the kept ROIs, ``(N, Ly*Lx)``; see :func:`roi_masks_from_stat`."""
        if self.Ly is None or self.Lx is None:
            raise DataError(f"{self.folder}: field of view size unknown (no Ly/Lx in ops.npy)")
        return roi_masks_from_stat(self.stat, self.Ly, self.Lx, weighted=weighted)

    def to_activity(self, signal: str = "dff", **dff_kw) -> ActivityTraces:
        """The chosen signal as :class:`ActivityTraces`."""
        if signal == "dff":
            traces = self.dff(**dff_kw)
        elif signal == "F":
            traces = self.F
        elif signal == "corrected":
            traces = self.corrected()
        elif signal == "spks":
            traces = self.spks
        else:
            raise ConfigError(f"unknown signal {signal!r}; use one of {', '.join(SIGNALS)}")
        return ActivityTraces(traces, self.fs, self.neuron_ids.copy(), signal, str(self.folder or ""))


def find_suite2p_plane(folder: str | os.PathLike, plane: int = 0) -> Path:
    """Resolve a ``plane`` folder from a plane, ``suite2p/`` or session folder.

    Raises:
        DataError: no Suite2p output is found there.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: Suite2p folder does not exist")
    for cand in (folder, folder / f"plane{plane}", folder / "suite2p" / f"plane{plane}"):
        if (cand / "F.npy").is_file() or (cand / "stat.npy").is_file():
            return cand
    for cand in (folder / f"plane{plane}", folder / "suite2p" / f"plane{plane}"):
        if cand.is_dir():
            return cand  # exists but incomplete: the loader names the missing file
    raise DataError(
        f"{folder}: no Suite2p output found (looked for F.npy in it, in plane{plane}/ and in suite2p/plane{plane}/)"
    )


#: Why a Suite2p object array that names anything else is refused.
SUITE2P_PICKLE_RULE = "Suite2p files may only hold arrays, dicts, lists, numbers and strings"


def load_npy(path: Path, objects: bool = False) -> Any:
    """A ``.npy`` file; with ``objects``, object arrays are unpickled through an allow-list
    (:mod:`mouseemo.utils.safe_pickle`), so a crafted ``ops.npy``/``stat.npy`` cannot run code."""
    if not path.is_file():
        raise DataError(f"{path}: required file is missing")
    try:
        if objects:
            return safe_pickle.load_npy(path, rule=SUITE2P_PICKLE_RULE, encoding="latin1")
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path}: cannot read ({exc})") from exc


def check_finite(arr: np.ndarray, path: Path) -> None:
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise DataError(f"{path}: contains NaN or inf (first at index {tuple(int(i) for i in bad)})")


def _as_float_2d(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.ndim != 2:
        raise DataError(f"{path}: expected a 2-D (ROIs, frames) array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{path}: expected numbers, got dtype {arr.dtype}")
    out = arr.astype(np.float32, copy=False)
    check_finite(out, path)
    return out


def load_suite2p(
    folder: str | os.PathLike,
    only_cells: bool = True,
    neuropil_coef: float = 0.7,
    cell_prob: float | None = None,
    fs: float | None = None,
    plane: int = 0,
) -> Suite2pRecording:
    """Read a Suite2p plane folder with NumPy alone (Suite2p is not needed).

    Args:
        folder: a ``plane0/`` folder, a ``suite2p/`` folder or a session folder holding
            ``suite2p/plane0``.
        only_cells: keep only ROIs labelled as cells.
        neuropil_coef: neuropil coefficient for :meth:`Suite2pRecording.corrected`.
        cell_prob: if given, a ROI is a cell when its classifier probability is ``>= cell_prob``
            (instead of Suite2p's stored label).
        fs: frame rate in Hz; overrides ``ops["fs"]``.
        plane: which ``plane<k>`` to read from a ``suite2p/`` or session folder.

    Returns:
        The recording; ``neuron_ids`` maps its rows back to the original ROI indices.

    Raises:
        DataError: a file is missing, unreadable, inconsistent or contains NaN/inf.

    Warns:
        UserWarning: when ``fs`` is not given and ``ops["fs"]`` is missing or 1 (Suite2p's old
            default, which means the frame rate was not recorded).
    """
    plane_dir = find_suite2p_plane(folder, plane)
    paths = {name: plane_dir / name for name in SUITE2P_FILES}
    for path in paths.values():
        if not path.is_file():
            raise DataError(f"{path}: required Suite2p file is missing")

    F = _as_float_2d(load_npy(paths["F.npy"]), paths["F.npy"])
    Fneu = _as_float_2d(load_npy(paths["Fneu.npy"]), paths["Fneu.npy"])
    spks = _as_float_2d(load_npy(paths["spks.npy"]), paths["spks.npy"])
    for name, arr in (("Fneu.npy", Fneu), ("spks.npy", spks)):
        if arr.shape != F.shape:
            raise DataError(f"{paths[name]}: shape {arr.shape} does not match F.npy shape {F.shape}")
    num_rois = F.shape[0]

    iscell_raw = np.asarray(load_npy(paths["iscell.npy"]))
    if iscell_raw.ndim == 1:
        iscell_raw = iscell_raw[:, None]
    if (
        iscell_raw.ndim != 2
        or iscell_raw.shape[0] != num_rois
        or not np.issubdtype(iscell_raw.dtype, np.number)
    ):
        raise DataError(
            f"{paths['iscell.npy']}: expected ({num_rois}, 2) numbers to match F.npy, got "
            f"{iscell_raw.shape} {iscell_raw.dtype}"
        )
    iscell_raw = iscell_raw.astype(np.float64)
    check_finite(iscell_raw, paths["iscell.npy"])
    probs = iscell_raw[:, 1] if iscell_raw.shape[1] > 1 else iscell_raw[:, 0]
    is_cell = probs >= cell_prob if cell_prob is not None else iscell_raw[:, 0] > 0.5

    stat_raw = load_npy(paths["stat.npy"], objects=True)
    stat = list(np.atleast_1d(stat_raw))
    if len(stat) != num_rois:
        raise DataError(f"{paths['stat.npy']}: {len(stat)} ROIs but F.npy has {num_rois}")
    for i, s in enumerate(stat):
        if not isinstance(s, dict) or "ypix" not in s or "xpix" not in s:
            raise DataError(f"{paths['stat.npy']}: entry {i} is not a ROI dict with 'ypix' and 'xpix'")

    ops_raw = load_npy(paths["ops.npy"], objects=True)
    ops = ops_raw.item() if isinstance(ops_raw, np.ndarray) and ops_raw.dtype == object else ops_raw
    if not isinstance(ops, dict):
        raise DataError(f"{paths['ops.npy']}: expected a dict of options, got {type(ops).__name__}")

    if fs is None:
        fs_ops = ops.get("fs")
        if fs_ops is None:
            warnings.warn(
                f"{paths['ops.npy']}: no frame rate 'fs'; pass fs= to load_suite2p", UserWarning, stacklevel=2
            )
            fs_val = None
        else:
            fs_val = float(fs_ops)
            if fs_val == 1.0:
                warnings.warn(
                    f"{paths['ops.npy']}: fs == 1, Suite2p's default, so the real frame rate was probably "
                    "not recorded; pass fs= to load_suite2p",
                    UserWarning,
                    stacklevel=2,
                )
            if not np.isfinite(fs_val) or fs_val <= 0:
                raise DataError(f"{paths['ops.npy']}: invalid frame rate fs={fs_ops!r}")
    else:
        fs_val = float(fs)
        if not np.isfinite(fs_val) or fs_val <= 0:
            raise ConfigError(f"fs must be a positive number, got {fs!r}")

    Ly = int(ops["Ly"]) if "Ly" in ops else None
    Lx = int(ops["Lx"]) if "Lx" in ops else None

    keep = np.flatnonzero(is_cell) if only_cells else np.arange(num_rois)
    return Suite2pRecording(
        F=F[keep],
        Fneu=Fneu[keep],
        spks=spks[keep],
        iscell=is_cell[keep],
        cell_prob=probs[keep].astype(np.float32),
        fs=fs_val,
        stat=[stat[i] for i in keep],
        ops=ops,
        neuron_ids=keep.astype(np.int64),
        Ly=Ly,
        Lx=Lx,
        neuropil_coef=float(neuropil_coef),
        folder=plane_dir,
    )


def require_neurons(rec: Suite2pRecording, only_cells: bool, hint: str = "") -> None:
    """DataError naming ``rec``'s folder when it holds no neuron: no ROI labelled a cell (``hint``
    then says what to do), or no ROI at all."""
    if rec.num_neurons:
        return
    raise DataError(
        f"{rec.folder}: no ROI is labelled a cell in iscell.npy{hint}"
        if only_cells
        else f"{rec.folder}: Suite2p found no ROI (F.npy has no rows), so there is no neuron"
    )
