"""One entry point for every imaging format: :func:`load_activity`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mouseemo.data.imaging.caiman import load_caiman_npz
from mouseemo.data.imaging.dff import dff
from mouseemo.data.imaging.rois import extract_traces, roi_masks_from_stat
from mouseemo.data.imaging.suite2p import load_npy, load_suite2p, require_neurons
from mouseemo.data.imaging.tiff import TiffStack
from mouseemo.data.imaging.traces import SIGNALS, ActivityTraces
from mouseemo.data.sync import read_timestamps
from mouseemo.errors import ConfigError, DataError


def _find_stat_for_tiff(tif: Path) -> Path | None:
    for cand in (tif.with_name("stat.npy"), tif.parent / "suite2p" / "plane0" / "stat.npy"):
        if cand.is_file():
            return cand
    return None


def load_activity(
    path: str | os.PathLike,
    kind: str = "auto",
    signal: str = "dff",
    fs: float | None = None,
    only_cells: bool = True,
    stat: str | os.PathLike | Sequence[dict] | None = None,
    dff_kw: dict | None = None,
) -> ActivityTraces:
    """Load neural activity from whatever ``path`` is.

    - a session folder (``suite2p/plane0`` inside) or a Suite2p ``suite2p/``/``plane0/`` folder →
      Suite2p; a session's ``imaging_timestamps.csv`` becomes ``t``;
    - a ``.tif``/``.tiff`` → traces extracted with ROI masks from ``stat`` (a ``stat.npy`` path or a
      list of dicts; default: ``stat.npy`` next to the TIFF or in ``suite2p/plane0`` beside it);
    - a ``.npz`` → CaImAn CNMF output (``signal="F"`` only).

    Args:
        path: file or folder.
        kind: ``"auto"``, ``"suite2p"``, ``"tiff"`` or ``"caiman"``.
        signal: ``"dff"``, ``"F"``, ``"corrected"`` or ``"spks"``.
        fs: frame rate override in Hz.
        only_cells: Suite2p: keep only ROIs labelled as cells.
        stat: TIFF: the ROI definitions.
        dff_kw: extra arguments for :func:`dff`.

    Returns:
        :class:`ActivityTraces`.

    Shape:
        traces: ``(N, T)``.
    """
    path = Path(path)
    if signal not in SIGNALS:
        raise ConfigError(f"unknown signal {signal!r}; use one of {', '.join(SIGNALS)}")
    if not path.exists():
        raise DataError(f"{path}: does not exist")
    if kind == "auto":
        suffix = path.suffix.lower()
        if path.is_dir():
            kind = "suite2p"
        elif suffix in (".tif", ".tiff"):
            kind = "tiff"
        elif suffix == ".npz":
            kind = "caiman"
        else:
            raise DataError(f"{path}: cannot tell the imaging format (expected a folder, .tif or .npz)")
    dff_kw = dict(dff_kw or {})

    if kind == "suite2p":
        rec = load_suite2p(path, only_cells=only_cells, fs=fs)
        require_neurons(rec, only_cells)
        act = rec.to_activity(signal, **dff_kw)
        ts = path / "imaging_timestamps.csv"
        if path.is_dir() and ts.is_file():
            t = read_timestamps(ts)
            if len(t) != act.num_frames:
                raise DataError(f"{ts}: {len(t)} timestamps but Suite2p has {act.num_frames} frames")
            act.t = t
        return act
    if kind == "caiman":
        return load_caiman_npz(path, fs=fs).to_activity(signal)
    if kind == "tiff":
        if signal == "spks":
            raise ConfigError(f"{path}: a TIFF gives fluorescence only; signal='spks' needs Suite2p output")
        if stat is None:
            stat = _find_stat_for_tiff(path)
            if stat is None:
                raise DataError(f"{path}: no ROI definitions; pass stat= (a stat.npy or a list of ROI dicts)")
        if isinstance(stat, (str, os.PathLike)):
            stat_path = Path(stat)
            stat = list(np.atleast_1d(load_npy(stat_path, objects=True)))
        with TiffStack(path) as stack:
            masks = roi_masks_from_stat(stat, stack.Ly, stack.Lx)
            want_neu = signal in ("corrected", "dff")
            result = extract_traces(stack, masks, neuropil=want_neu)
        if want_neu:
            F, Fneu = result
            coef = float(dff_kw.pop("neuropil_coef", 0.7))
            if signal == "corrected":
                traces = F - np.float32(coef) * Fneu
            else:
                if fs is None:
                    raise ConfigError(f"{path}: dF/F needs the frame rate; pass fs=")
                traces = dff(F, fs, Fneu=Fneu, neuropil_coef=coef, **dff_kw)
        else:
            traces = result
        return ActivityTraces(traces, fs, np.arange(traces.shape[0]), signal, str(path))
    raise ConfigError(f"unknown imaging kind {kind!r}; use 'auto', 'suite2p', 'tiff' or 'caiman'")
