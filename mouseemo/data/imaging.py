"""Two-photon imaging readers: Suite2p folders, TIFF stacks with ROI masks, CaImAn CNMF output.

Formats stay here; everything returned is a plain numpy array (or a small dataclass of them), so the
rest of the package never needs Suite2p, CaImAn or tifffile to understand a recording.

Conventions: ``N`` neurons (ROIs), ``T`` imaging frames, ``Ly``/``Lx`` the field of view in pixels.
Pixel ``(y, x)`` of a frame has the flat index ``y * Lx + x`` (C order), which is what
:func:`roi_masks_from_stat` uses and what ``frame.reshape(-1)`` produces.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy import ndimage

from mouseemo.data.sync import read_timestamps
from mouseemo.errors import ConfigError, DataError
from mouseemo.utils import safe_pickle

__all__ = [
    "DFF_PERCENTILE",
    "DFF_WINDOW_S",
    "ActivityTraces",
    "CaimanRecording",
    "Suite2pRecording",
    "TiffStack",
    "dff",
    "extract_traces",
    "find_suite2p_plane",
    "load_activity",
    "load_caiman_npz",
    "load_suite2p",
    "neuropil_masks",
    "require_neurons",
    "roi_masks_from_stat",
]

SUITE2P_FILES = ("F.npy", "Fneu.npy", "spks.npy", "iscell.npy", "stat.npy", "ops.npy")
SIGNALS = ("dff", "F", "corrected", "spks")


# --------------------------------------------------------------------------------------------------
# Common output
# --------------------------------------------------------------------------------------------------


@dataclass
class ActivityTraces:
    """Activity of ``N`` neurons over ``T`` imaging frames, whatever the source format.

    Attributes:
        traces: activity, float32 ``(N, T)``.
        fs: imaging frame rate in Hz, or None when the source does not record it.
        neuron_ids: index of each row in the source (Suite2p ROI index, CaImAn component), ``(N,)``.
        signal: what ``traces`` holds (``"dff"``, ``"F"``, ``"corrected"``, ``"spks"``).
        source: the file or folder it was read from.
        t: per-frame times in seconds (float64 ``(T,)``) when a timestamp file was found, else None.

    Shape:
        traces: ``(N, T)``; neuron_ids: ``(N,)``; t: ``(T,)``.
    """

    traces: np.ndarray
    fs: float | None
    neuron_ids: np.ndarray
    signal: str = "F"
    source: str = ""
    t: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.traces = np.asarray(self.traces, dtype=np.float32)
        if self.traces.ndim != 2:
            raise DataError(f"{self.source or 'activity'}: traces must be (N, T), got {self.traces.shape}")
        self.neuron_ids = np.asarray(self.neuron_ids, dtype=np.int64)
        if self.neuron_ids.shape != (self.traces.shape[0],):
            raise DataError(
                f"{self.source or 'activity'}: {len(self.neuron_ids)} neuron ids for "
                f"{self.traces.shape[0]} traces"
            )
        if self.t is not None:
            self.t = np.asarray(self.t, dtype=np.float64)
            if self.t.shape != (self.traces.shape[1],):
                raise DataError(
                    f"{self.source or 'activity'}: {self.t.shape[0]} timestamps for "
                    f"{self.traces.shape[1]} imaging frames"
                )

    @property
    def num_neurons(self) -> int:
        return int(self.traces.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.traces.shape[1])

    def times(self) -> np.ndarray:
        """Frame times in seconds: the stored timestamps, else ``arange(T) / fs``.

        Raises:
            ConfigError: neither timestamps nor a frame rate are known.
        """
        if self.t is not None:
            return self.t
        if self.fs is None:
            raise ConfigError(
                f"{self.source or 'activity'}: no timestamps and no frame rate; pass fs= when loading"
            )
        return np.arange(self.num_frames, dtype=np.float64) / self.fs


# --------------------------------------------------------------------------------------------------
# dF/F
# --------------------------------------------------------------------------------------------------

#: Baseline window of mouseemo's dF/F, in seconds: every caller (``mouseemo correlates``, the joint
#: datamodule, ``mouseemo embed``) uses :func:`dff` with this default. It must be longer than the
#: slowest state studied: LiCl malaise lasts minutes, and a shorter running baseline follows it and
#: subtracts it away. A recording shorter than the window gets a window as long as itself.
DFF_WINDOW_S = 600.0

#: Percentile of the running baseline F0.
DFF_PERCENTILE = 8.0


def dff(
    F: np.ndarray,
    fs: float,
    method: str = "percentile",
    window_s: float = DFF_WINDOW_S,
    percentile: float = DFF_PERCENTILE,
    Fneu: np.ndarray | None = None,
    neuropil_coef: float = 0.7,
    sigma_s: float = 10.0,
    min_baseline: float | None = None,
) -> np.ndarray:
    """ΔF/F₀ with a slowly varying baseline F₀: mouseemo's one dF/F convention.

    The convention (the defaults): neuropil-corrected fluorescence ``F - 0.7 Fneu``, F₀ its running
    8th percentile (:data:`DFF_PERCENTILE`) over a centred window of 600 s (:data:`DFF_WINDOW_S`),
    ``(F - F₀) / F₀``. ``mouseemo correlates``, the joint encoder's datamodule and ``mouseemo embed``
    all compute dF/F with it, so their activity is the same numbers.

    The trace is first neuropil-corrected (``F - neuropil_coef * Fneu``) when ``Fneu`` is given. The
    baseline is then, per neuron:

    - ``"percentile"``: the running ``percentile`` over a centred window of ``window_s`` seconds
      (as long as the trace when the trace is shorter);
    - ``"maximin"``: a Gaussian smoothing (``sigma_s`` seconds), then a running minimum and a running
      maximum over ``window_s`` seconds — a lower envelope that tracks slow drift;
    - ``"constant"``: one ``percentile`` of the whole trace.

    Baselines close to zero (neuropil subtraction can push them there or below) would blow ΔF/F up,
    so F₀ is floored at ``min_baseline`` (default: 1 % of the mean absolute raw trace of that neuron)
    and a warning names how many neurons needed it.

    Args:
        F: fluorescence.
        fs: frame rate in Hz (sets the window length in frames).
        method: ``"percentile"``, ``"maximin"`` or ``"constant"``.
        window_s: baseline window in seconds.
        percentile: baseline percentile (0–100) for ``"percentile"`` and ``"constant"``.
        Fneu: neuropil fluorescence, same shape as ``F``; None for no correction.
        neuropil_coef: neuropil contamination factor.
        sigma_s: Gaussian smoothing in seconds before ``"maximin"``.
        min_baseline: absolute floor for F₀; None for the per-neuron 1 % rule.

    Returns:
        ΔF/F₀ as float32, same shape as ``F``.

    Shape:
        F, Fneu: ``(N, T)`` or ``(T,)``. Output: same as ``F``.

    Example:
        >>> F = np.full((2, 100), 100.0, dtype=np.float32); F[:, 50] = 150
        >>> float(dff(F, fs=10.0, window_s=5.0)[0, 50])
        0.5
    """
    F = np.asarray(F)
    one_d = F.ndim == 1
    F2 = np.atleast_2d(F).astype(np.float64)
    if F2.ndim != 2:
        raise DataError(f"dff: F must be (N, T) or (T,), got shape {F.shape}")
    if Fneu is not None:
        Fneu2 = np.atleast_2d(np.asarray(Fneu)).astype(np.float64)
        if Fneu2.shape != F2.shape:
            raise DataError(f"dff: Fneu shape {np.shape(Fneu)} does not match F shape {F.shape}")
        Fc = F2 - neuropil_coef * Fneu2
    else:
        Fc = F2
    if not np.all(np.isfinite(Fc)):
        raise DataError("dff: fluorescence contains NaN or inf")
    if fs is None or not np.isfinite(fs) or fs <= 0:
        raise ConfigError(f"dff: frame rate fs must be a positive number, got {fs!r}")
    if not 0 <= percentile <= 100:
        raise ConfigError(f"dff: percentile must be in [0, 100], got {percentile}")

    num_t = Fc.shape[1]
    win = max(1, min(int(round(window_s * fs)), num_t))
    if method == "percentile":
        # One 1-D call per neuron: SciPy's 1-D rank filter is far faster than a (1, win) 2-D footprint.
        F0 = np.stack([ndimage.percentile_filter(row, percentile, size=win, mode="reflect") for row in Fc])
    elif method == "maximin":
        smooth = ndimage.gaussian_filter1d(Fc, sigma=max(sigma_s * fs, 1e-3), axis=1, mode="reflect")
        F0 = ndimage.maximum_filter1d(ndimage.minimum_filter1d(smooth, win, axis=1), win, axis=1)
    elif method == "constant":
        F0 = np.repeat(np.percentile(Fc, percentile, axis=1, keepdims=True), num_t, axis=1)
    else:
        raise ConfigError(f"dff: unknown method {method!r}; use 'percentile', 'maximin' or 'constant'")

    if min_baseline is None:
        floor = np.maximum(0.01 * np.mean(np.abs(F2), axis=1, keepdims=True), 1e-6)
    else:
        floor = np.full((Fc.shape[0], 1), float(min_baseline))
    low = F0 < floor
    if low.any():
        num_low = int(low.any(axis=1).sum())
        warnings.warn(
            f"dff: baseline F0 fell below its floor for {num_low} of {Fc.shape[0]} neurons "
            "(neuropil coefficient too large?); floored to keep dF/F finite",
            stacklevel=2,
        )
        F0 = np.maximum(F0, floor)
    out = ((Fc - F0) / F0).astype(np.float32)
    return out[0] if one_d else out


# --------------------------------------------------------------------------------------------------
# Suite2p
# --------------------------------------------------------------------------------------------------


@dataclass
class Suite2pRecording:
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

    @property
    def num_neurons(self) -> int:
        return int(self.F.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.F.shape[1])

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
#: Likewise for CaImAn files, whose results also hold SciPy sparse matrices.
CAIMAN_PICKLE_RULE = "CaImAn files may only hold arrays, sparse matrices, dicts, lists, numbers and strings"


def _load_npy(path: Path, objects: bool = False) -> Any:
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


def _check_finite(arr: np.ndarray, path: Path) -> None:
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise DataError(f"{path}: contains NaN or inf (first at index {tuple(int(i) for i in bad)})")


def _as_float_2d(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.ndim != 2:
        raise DataError(f"{path}: expected a 2-D (ROIs, frames) array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{path}: expected numbers, got dtype {arr.dtype}")
    out = arr.astype(np.float32, copy=False)
    _check_finite(out, path)
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

    F = _as_float_2d(_load_npy(paths["F.npy"]), paths["F.npy"])
    Fneu = _as_float_2d(_load_npy(paths["Fneu.npy"]), paths["Fneu.npy"])
    spks = _as_float_2d(_load_npy(paths["spks.npy"]), paths["spks.npy"])
    for name, arr in (("Fneu.npy", Fneu), ("spks.npy", spks)):
        if arr.shape != F.shape:
            raise DataError(f"{paths[name]}: shape {arr.shape} does not match F.npy shape {F.shape}")
    num_rois = F.shape[0]

    iscell_raw = np.asarray(_load_npy(paths["iscell.npy"]))
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
    _check_finite(iscell_raw, paths["iscell.npy"])
    probs = iscell_raw[:, 1] if iscell_raw.shape[1] > 1 else iscell_raw[:, 0]
    is_cell = probs >= cell_prob if cell_prob is not None else iscell_raw[:, 0] > 0.5

    stat_raw = _load_npy(paths["stat.npy"], objects=True)
    stat = list(np.atleast_1d(stat_raw))
    if len(stat) != num_rois:
        raise DataError(f"{paths['stat.npy']}: {len(stat)} ROIs but F.npy has {num_rois}")
    for i, s in enumerate(stat):
        if not isinstance(s, dict) or "ypix" not in s or "xpix" not in s:
            raise DataError(f"{paths['stat.npy']}: entry {i} is not a ROI dict with 'ypix' and 'xpix'")

    ops_raw = _load_npy(paths["ops.npy"], objects=True)
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


# --------------------------------------------------------------------------------------------------
# TIFF stacks
# --------------------------------------------------------------------------------------------------


class TiffStack:
    """Lazy ``(T, Ly, Lx)`` view of a TIFF movie; only the frames asked for are read.

    Three access paths, best first: the whole series memory-mapped (files tifffile wrote contiguously,
    BigTIFF included); each page memory-mapped at its own offset (uncompressed multi-page files such as
    ImageJ stacks, whose image data are interleaved with page headers); pages decoded on demand
    (compressed files). ``mode`` says which one is in use.

    The object can be pickled (file handles are reopened in the new process), so it works inside
    DataLoader workers.

    Args:
        path: TIFF file.

    Shape:
        ``stack[i]``: ``(Ly, Lx)``; ``stack[a:b]``: ``(b - a, Ly, Lx)``.

    Example:
        >>> stack = TiffStack("movie.tif")  # doctest: +SKIP
        >>> first = stack[0]; mean = stack.mean_image(max_frames=500)  # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: TIFF file does not exist")
        self._open()

    # -- opening ------------------------------------------------------------------------------------
    def _open(self) -> None:
        import tifffile

        self._tif = None
        self._mm = None
        self._pages: list = []
        self._frame_offsets: np.ndarray | None = None
        try:
            tif = tifffile.TiffFile(self.path)
        except Exception as exc:  # tifffile raises a variety of errors for non-TIFF input
            raise DataError(f"{self.path}: not a readable TIFF ({exc})") from exc
        try:
            all_series = list(tif.series)
            series = all_series[0]
            shape = tuple(int(s) for s in series.shape)
            self.dtype = np.dtype(series.dtype)
            pages = list(series.pages)
            # tifffile's own writer makes one series per write call; a movie written frame by frame is
            # many single-frame series of the same shape, which together are the stack.
            one_frame_each = (
                len(all_series) > 1
                and len(shape) == 2
                and all(tuple(s.shape) == shape and np.dtype(s.dtype) == self.dtype for s in all_series)
            )
            if one_frame_each:
                pages = [s.pages[0] for s in all_series]
                shape = (len(all_series),) + shape
        except Exception as exc:
            tif.close()
            raise DataError(f"{self.path}: cannot read TIFF structure ({exc})") from exc
        # Singleton axes (ImageJ channel/slice axes of size 1) are dropped; anything else beyond
        # (T, Ly, Lx) is a multi-channel or multi-plane movie that needs splitting first.
        core = [s for s in shape[:-2] if s != 1]
        if len(shape) < 2 or len(core) > 1:
            tif.close()
            raise DataError(f"{self.path}: expected a single-channel (T, Ly, Lx) stack, got shape {shape}")
        self.shape = (core[0] if core else 1, shape[-2], shape[-1])

        if not one_frame_each:
            try:
                mm = tifffile.memmap(self.path, mode="r")
                if mm.size == int(np.prod(self.shape)):
                    self._mm = mm
                    self.mode = "memmap"
                    tif.close()
                    return
            except Exception:
                pass  # not contiguous: try per-page mapping

        if len(pages) == self.shape[0] and all(
            p is not None and getattr(p, "is_memmappable", False) and tuple(p.shape) == self.shape[1:]
            for p in pages
        ):
            self._frame_offsets = np.array([p.dataoffsets[0] for p in pages], dtype=np.int64)
            self._mm = np.memmap(self.path, dtype=np.uint8, mode="r")
            self._frame_dtype = self.dtype.newbyteorder(tif.byteorder)
            self.mode = "pages-memmap"
            tif.close()
            return
        if len(pages) != self.shape[0]:
            tif.close()
            raise DataError(f"{self.path}: {len(pages)} pages for {self.shape[0]} frames; unsupported layout")
        self._tif = tif
        self._pages = pages
        self.mode = "pages"

    def __getstate__(self) -> dict:
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.path = state["path"]
        self._open()

    def close(self) -> None:
        """Release file handles; the stack cannot be read afterwards."""
        if self._tif is not None:
            self._tif.close()
        self._tif = None
        self._mm = None
        self._pages = []

    def __enter__(self) -> TiffStack:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TiffStack({str(self.path)!r}, shape={self.shape}, dtype={self.dtype}, mode={self.mode!r})"

    # -- access -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.shape[0]

    @property
    def Ly(self) -> int:
        return self.shape[1]

    @property
    def Lx(self) -> int:
        return self.shape[2]

    def _read(self, idx: np.ndarray) -> np.ndarray:
        """Frames at integer indices ``idx`` as a fresh ``(len(idx), Ly, Lx)`` array."""
        out = np.empty((len(idx),) + self.shape[1:], dtype=self.dtype)
        if len(idx) == 0:
            return out
        if self.mode == "memmap":
            out[:] = self._mm.reshape(self.shape)[idx]
        elif self.mode == "pages-memmap":
            count = self.shape[1] * self.shape[2]
            for k, i in enumerate(idx):
                frame = np.frombuffer(self._mm, self._frame_dtype, count, int(self._frame_offsets[i]))
                out[k] = frame.reshape(self.shape[1:])
        elif self.mode == "pages":
            if self._tif is None:
                raise DataError(f"{self.path}: stack was closed")
            for k, i in enumerate(idx):
                out[k] = np.asarray(self._pages[int(i)].asarray()).reshape(self.shape[1:])
        else:
            raise DataError(f"{self.path}: stack was closed")
        return out

    def __getitem__(self, key) -> np.ndarray:
        rest: tuple = ()
        if isinstance(key, tuple):
            key, rest = key[0], key[1:]
        num_t = self.shape[0]
        if isinstance(key, (int, np.integer)):
            i = int(key) + num_t if key < 0 else int(key)
            if not 0 <= i < num_t:
                raise IndexError(f"frame {key} out of range for {num_t} frames")
            frames = self._read(np.array([i]))[0]
        elif isinstance(key, slice):
            frames = self._read(np.arange(num_t)[key])
        else:
            idx = np.asarray(key)
            if idx.dtype == bool:
                idx = np.flatnonzero(idx)
            idx = np.where(idx < 0, idx + num_t, idx)
            if idx.size and (idx.min() < 0 or idx.max() >= num_t):
                raise IndexError(f"frame index out of range for {num_t} frames")
            frames = self._read(idx.astype(np.int64).reshape(-1))
        if rest:
            frames = frames[(slice(None),) + rest] if frames.ndim == 3 else frames[rest]
        return frames

    def iter_chunks(self, size: int = 256, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        """Yield consecutive ``(≤size, Ly, Lx)`` blocks of frames ``start..stop``."""
        if size < 1:
            raise ConfigError(f"chunk size must be >= 1, got {size}")
        stop = self.shape[0] if stop is None else min(stop, self.shape[0])
        for a in range(start, stop, size):
            yield self[a : min(a + size, stop)]

    def mean_image(self, max_frames: int | None = 1000, chunk_size: int = 256) -> np.ndarray:
        """Mean frame (float32 ``(Ly, Lx)``) over at most ``max_frames`` evenly spaced frames."""
        num_t = self.shape[0]
        if max_frames is None or max_frames >= num_t:
            idx = np.arange(num_t)
        else:
            idx = np.unique(np.linspace(0, num_t - 1, max(1, int(max_frames))).round().astype(np.int64))
        acc = np.zeros(self.shape[1:], dtype=np.float64)
        for a in range(0, len(idx), chunk_size):
            acc += self._read(idx[a : a + chunk_size]).sum(axis=0, dtype=np.float64)
        return (acc / len(idx)).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# ROI masks and trace extraction
# --------------------------------------------------------------------------------------------------


def _roi_pixels(s: dict, i: int, Ly: int, Lx: int) -> tuple[np.ndarray, np.ndarray]:
    ypix = np.asarray(s["ypix"]).astype(np.int64).ravel()
    xpix = np.asarray(s["xpix"]).astype(np.int64).ravel()
    if ypix.shape != xpix.shape:
        raise DataError(f"ROI {i}: ypix and xpix have different lengths ({len(ypix)} vs {len(xpix)})")
    if ypix.size == 0:
        raise DataError(f"ROI {i}: has no pixels")
    if ypix.min() < 0 or xpix.min() < 0 or ypix.max() >= Ly or xpix.max() >= Lx:
        raise DataError(f"ROI {i}: pixels fall outside the {Ly}x{Lx} field of view")
    return ypix, xpix


def roi_masks_from_stat(
    stat: Sequence[dict], Ly: int, Lx: int, weighted: bool = True, exclude_overlap: bool = False
) -> sp.csr_matrix:
    """Sparse ROI masks from Suite2p-style ``stat`` dicts.

    Args:
        stat: per-ROI dicts with ``ypix``, ``xpix`` and (for weighting) ``lam``.
        Ly, Lx: field of view.
        weighted: weights are ``lam`` normalised to sum 1 per ROI (uniform when ``lam`` is absent);
            otherwise every ROI pixel is 1.
        exclude_overlap: drop pixels flagged in ``stat[i]["overlap"]`` (shared with another ROI), as
            Suite2p does by default when it extracts F.

    Returns:
        float32 CSR matrix; row ``i`` is ROI ``i`` over flat pixels ``y * Lx + x``.

    Shape:
        Output: ``(N, Ly*Lx)``.
    """
    rows, cols, vals = [], [], []
    for i, s in enumerate(stat):
        ypix, xpix = _roi_pixels(s, i, Ly, Lx)
        w = np.ones(len(ypix), dtype=np.float64)
        if weighted and s.get("lam") is not None:
            w = np.asarray(s["lam"], dtype=np.float64).ravel()
            if w.shape != ypix.shape:
                raise DataError(f"ROI {i}: lam has {len(w)} values for {len(ypix)} pixels")
        if exclude_overlap and s.get("overlap") is not None:
            keep = ~np.asarray(s["overlap"], dtype=bool).ravel()
            if keep.any():  # a ROI made only of shared pixels keeps them rather than vanishing
                ypix, xpix, w = ypix[keep], xpix[keep], w[keep]
        if weighted:
            total = w.sum()
            if not np.isfinite(total) or total <= 0:
                raise DataError(f"ROI {i}: pixel weights lam do not sum to a positive number")
            w = w / total
        rows.append(np.full(len(ypix), i, dtype=np.int64))
        cols.append(ypix * Lx + xpix)
        vals.append(w)
    num_rois = len(rows)
    if num_rois == 0:
        return sp.csr_matrix((0, Ly * Lx), dtype=np.float32)
    masks = sp.coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(num_rois, Ly * Lx)
    ).tocsr()
    masks.sum_duplicates()
    return masks.astype(np.float32)


def neuropil_masks(
    stat: Sequence[dict] | sp.spmatrix,
    Ly: int,
    Lx: int,
    inner_radius: int = 2,
    min_pixels: int = 350,
    use_stored: bool = True,
) -> sp.csr_matrix:
    """Neuropil masks: the ``min_pixels`` pixels nearest each ROI's centre that belong to no ROI.

    All ROI pixels, grown by ``inner_radius``, are excluded, so each mask is a ring-like region around
    its ROI that contains no soma. Rows are normalised to sum 1 (a plain mean over the region).

    Args:
        stat: Suite2p-style ROI dicts, or ROI masks ``(N, Ly*Lx)`` as from :func:`roi_masks_from_stat`.
        Ly, Lx: field of view.
        inner_radius: gap in pixels between a ROI and its neuropil.
        min_pixels: pixels per neuropil mask (fewer if the field of view has fewer free pixels).
        use_stored: when every ``stat`` dict carries Suite2p's own ``neuropil_mask`` (flat pixel
            indices ``y * Lx + x``), use those instead of building new ones.

    Returns:
        float32 CSR matrix.

    Shape:
        Output: ``(N, Ly*Lx)``.
    """
    if use_stored and not sp.issparse(stat) and len(stat) and all("neuropil_mask" in s for s in stat):
        rows, cols = [], []
        for i, s in enumerate(stat):
            pix = np.asarray(s["neuropil_mask"], dtype=np.int64).ravel()
            if pix.size == 0 or pix.min() < 0 or pix.max() >= Ly * Lx:
                raise DataError(
                    f"ROI {i}: stored neuropil_mask is empty or outside the {Ly}x{Lx} field of view"
                )
            rows.append(np.full(len(pix), i, dtype=np.int64))
            cols.append(pix)
        vals = np.concatenate([np.full(len(c), 1.0 / len(c)) for c in cols])
        return sp.csr_matrix(
            (vals, (np.concatenate(rows), np.concatenate(cols))), shape=(len(stat), Ly * Lx)
        ).astype(np.float32)
    if sp.issparse(stat):
        roi = sp.csr_matrix(stat)
        if roi.shape[1] != Ly * Lx:
            raise DataError(f"neuropil_masks: masks have {roi.shape[1]} pixels, expected {Ly}x{Lx}")
        pix_sets = [roi.indices[roi.indptr[i] : roi.indptr[i + 1]] for i in range(roi.shape[0])]
    else:
        pix_sets = []
        for i, s in enumerate(stat):
            ypix, xpix = _roi_pixels(s, i, Ly, Lx)
            pix_sets.append(ypix * Lx + xpix)
    num_rois = len(pix_sets)
    if num_rois == 0:
        return sp.csr_matrix((0, Ly * Lx), dtype=np.float32)
    occupied = np.zeros(Ly * Lx, dtype=bool)
    for pix in pix_sets:
        occupied[pix] = True
    occupied = occupied.reshape(Ly, Lx)
    if inner_radius > 0:
        r = int(inner_radius)
        yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
        occupied = ndimage.binary_dilation(occupied, structure=(yy**2 + xx**2) <= r * r)
    free = np.flatnonzero(~occupied.ravel())
    free_y, free_x = np.divmod(free, Lx)

    rows, cols, vals = [], [], []
    for i, pix in enumerate(pix_sets):
        if len(free) == 0:
            break
        cy, cx = np.divmod(pix, Lx)
        d2 = (free_y - cy.mean()) ** 2 + (free_x - cx.mean()) ** 2
        k = min(int(min_pixels), len(free))
        sel = np.argpartition(d2, k - 1)[:k] if k < len(free) else np.arange(len(free))
        rows.append(np.full(len(sel), i, dtype=np.int64))
        cols.append(free[sel])
        vals.append(np.full(len(sel), 1.0 / len(sel)))
    if not rows:
        return sp.csr_matrix((num_rois, Ly * Lx), dtype=np.float32)
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(num_rois, Ly * Lx)
    ).astype(np.float32)


def extract_traces(
    stack: TiffStack | np.ndarray,
    masks: sp.spmatrix | np.ndarray,
    chunk_size: int = 256,
    neuropil: bool | sp.spmatrix = False,
    normalize: bool = True,
    neuropil_kw: dict | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Weighted mean of each ROI's pixels in every frame, streaming the movie in chunks.

    Args:
        stack: a :class:`TiffStack`, an array or memmap ``(T, Ly, Lx)``.
        masks: ROI weights ``(N, Ly*Lx)`` (sparse or dense).
        chunk_size: frames read at a time (bounds memory).
        neuropil: False for ROI traces only; True to build masks with :func:`neuropil_masks` from
            ``masks``; or explicit neuropil masks ``(N, Ly*Lx)``.
        normalize: divide each mask row by its sum, so binary masks give the mean over the ROI.
        neuropil_kw: keyword arguments for :func:`neuropil_masks` when ``neuropil=True``.

    Returns:
        ``F`` float32 ``(N, T)``, or ``(F, Fneu)`` when neuropil is asked for.

    Shape:
        stack: ``(T, Ly, Lx)``; masks: ``(N, Ly*Lx)``; output: ``(N, T)``.
    """
    shape = tuple(getattr(stack, "shape", ()))
    if len(shape) != 3:
        raise DataError(f"extract_traces: stack must be (T, Ly, Lx), got shape {shape}")
    num_t, Ly, Lx = shape
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be >= 1, got {chunk_size}")

    def _prep(m, what: str) -> sp.csr_matrix:
        m = sp.csr_matrix(m, dtype=np.float64)  # normalise in float64, multiply in float32
        if m.shape[1] != Ly * Lx:
            raise DataError(
                f"extract_traces: {what} have {m.shape[1]} pixels but frames are {Ly}x{Lx} = {Ly * Lx}"
            )
        if normalize:
            sums = np.asarray(m.sum(axis=1)).ravel()
            if np.any(sums <= 0):
                raise DataError(f"extract_traces: {what} row {int(np.argmin(sums))} has no positive weight")
            m = sp.diags(1.0 / sums) @ m
        return sp.csr_matrix(m, dtype=np.float32)

    roi = _prep(masks, "ROI masks")
    neu = None
    if neuropil is not False and neuropil is not None:
        if neuropil is True:
            neu = _prep(neuropil_masks(roi, Ly, Lx, **(neuropil_kw or {})), "neuropil masks")
        else:
            neu = _prep(neuropil, "neuropil masks")
        if neu.shape[0] != roi.shape[0]:
            raise DataError(f"extract_traces: {neu.shape[0]} neuropil masks for {roi.shape[0]} ROIs")

    F = np.empty((roi.shape[0], num_t), dtype=np.float32)
    Fneu = np.empty((roi.shape[0], num_t), dtype=np.float32) if neu is not None else None
    for a in range(0, num_t, chunk_size):
        b = min(a + chunk_size, num_t)
        # float32 halves the memory of a chunk; sums over a few hundred pixels keep ~1e-6 precision
        chunk = np.asarray(stack[a:b], dtype=np.float32).reshape(b - a, Ly * Lx)
        F[:, a:b] = roi @ chunk.T
        if neu is not None:
            Fneu[:, a:b] = neu @ chunk.T
    return (F, Fneu) if neu is not None else F


# --------------------------------------------------------------------------------------------------
# CaImAn
# --------------------------------------------------------------------------------------------------


@dataclass
class CaimanRecording:
    """CaImAn CNMF components.

    Attributes:
        C: denoised temporal components, float32 ``(K, T)``.
        A: spatial footprints, CSC ``(Ly*Lx, K)``; pixels in CaImAn's column-major (Fortran) order.
        Ly, Lx: field of view when known, else None.
        fs: frame rate when stored, else None.
        neuron_ids: component indices ``(K,)``.
        info: the stored run information (parameters), if any.
        path: file read.

    Shape:
        C: ``(K, T)``; A: ``(Ly*Lx, K)``.
    """

    C: np.ndarray
    A: sp.csc_matrix
    Ly: int | None
    Lx: int | None
    fs: float | None
    neuron_ids: np.ndarray
    info: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def traces(self) -> np.ndarray:
        return self.C

    @property
    def num_neurons(self) -> int:
        return int(self.C.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.C.shape[1])

    def footprints(self) -> np.ndarray:
        """Dense footprints ``(K, Ly, Lx)`` float32 (needs Ly/Lx)."""
        if self.Ly is None or self.Lx is None:
            raise DataError(f"{self.path}: field of view unknown; pass dims=(Ly, Lx) to load_caiman_npz")
        dense = self.A.toarray().astype(np.float32)
        return dense.reshape(self.Lx, self.Ly, -1).transpose(2, 1, 0).copy()

    def to_activity(self, signal: str = "F") -> ActivityTraces:
        """``C`` as :class:`ActivityTraces` (only ``signal="F"``: C is already denoised)."""
        if signal != "F":
            raise ConfigError(
                f"{self.path}: CaImAn output holds denoised traces C only; signal={signal!r} is not "
                "available (use signal='F')"
            )
        return ActivityTraces(self.C, self.fs, self.neuron_ids.copy(), "F", str(self.path or ""))


def _unwrap(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.dtype == object and value.ndim == 0:
        return value.item()
    return value


def load_caiman_npz(
    path: str | os.PathLike,
    which: str = "full",
    dims: tuple[int, int] | None = None,
    fs: float | None = None,
) -> CaimanRecording:
    """Read CaImAn CNMF results from an ``.npz`` (keys ``A``/``C`` or ``A_<which>``/``C_<which>``).

    Args:
        path: the ``.npz`` file.
        which: suffix of ``A_*``/``C_*`` keys when plain ``A``/``C`` are absent (``"full"`` or ``"patch"``).
        dims: ``(Ly, Lx)`` when the file does not store them.
        fs: frame rate; else ``information["params"]["fr"]`` when stored, else None.

    Raises:
        DataError: missing keys, inconsistent shapes, NaN/inf.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: CaImAn file does not exist")
    try:
        # Stored by Python 2-era CaImAn as pickled scipy objects; latin1 decodes their byte strings.
        # Unpickled through an allow-list (arrays, containers, SciPy sparse matrices), so a crafted
        # file cannot run code; old module names resolve to the installed SciPy's public classes.
        data = safe_pickle.load_npz(
            path, extra=safe_pickle.SPARSE_GLOBALS, rule=CAIMAN_PICKLE_RULE, encoding="latin1"
        )
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc

    def pick(base: str) -> Any:
        for key in (base, f"{base}_{which}"):
            if key in data:
                return _unwrap(data[key])
        raise DataError(f"{path}: no '{base}' or '{base}_{which}' array (has {', '.join(sorted(data))})")

    A, C = pick("A"), pick("C")
    A = sp.csc_matrix(A) if sp.issparse(A) else sp.csc_matrix(np.asarray(A, dtype=np.float64))
    C = np.asarray(C)
    if C.ndim != 2 or not np.issubdtype(C.dtype, np.number):
        raise DataError(f"{path}: C must be a numeric (K, T) array, got {C.shape} {C.dtype}")
    C = C.astype(np.float32)
    _check_finite(C, path)
    if A.shape[1] != C.shape[0]:
        raise DataError(f"{path}: A has {A.shape[1]} components but C has {C.shape[0]}")

    info = _unwrap(data.get("information", {}))
    info = info if isinstance(info, dict) else {}
    params = info.get("params", {}) if isinstance(info.get("params"), dict) else {}
    if dims is None:
        stored = _unwrap(data["dims"]) if "dims" in data else params.get("dims")
        if stored is not None and len(stored) == 2:
            dims = (int(stored[0]), int(stored[1]))
    Ly, Lx = (int(dims[0]), int(dims[1])) if dims is not None else (None, None)
    if dims is not None and Ly * Lx != A.shape[0]:
        raise DataError(f"{path}: dims {Ly}x{Lx} do not match the {A.shape[0]} pixels of A")
    if fs is None and params.get("fr") is not None:
        fs = float(params["fr"])
    return CaimanRecording(
        C=C,
        A=A,
        Ly=Ly,
        Lx=Lx,
        fs=fs,
        neuron_ids=np.arange(C.shape[0], dtype=np.int64),
        info=info,
        path=path,
    )


# --------------------------------------------------------------------------------------------------
# One entry point
# --------------------------------------------------------------------------------------------------


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
            stat = list(np.atleast_1d(_load_npy(stat_path, objects=True)))
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
