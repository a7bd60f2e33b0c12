"""Two-photon imaging readers: Suite2p folders, TIFF stacks with ROI masks, CaImAn CNMF output.

Formats stay here; everything returned is a plain numpy array (or a small dataclass of them), so the
rest of the package never needs Suite2p, CaImAn or tifffile to understand a recording.

Conventions: ``N`` neurons (ROIs), ``T`` imaging frames, ``Ly``/``Lx`` the field of view in pixels.
Pixel ``(y, x)`` of a frame has the flat index ``y * Lx + x`` (C order), which is what
:func:`roi_masks_from_stat` uses and what ``frame.reshape(-1)`` produces.
"""

from mouseemo.data.imaging.caiman import CaimanRecording, load_caiman_npz
from mouseemo.data.imaging.dff import DFF_PERCENTILE, DFF_WINDOW_S, dff
from mouseemo.data.imaging.load import load_activity
from mouseemo.data.imaging.rois import extract_traces, neuropil_masks, roi_masks_from_stat
from mouseemo.data.imaging.suite2p import (
    SUITE2P_FILES,
    Suite2pRecording,
    find_suite2p_plane,
    load_suite2p,
    require_neurons,
)
from mouseemo.data.imaging.tiff import TiffStack
from mouseemo.data.imaging.traces import SIGNALS, ActivityTraces

__all__ = [
    "DFF_PERCENTILE",
    "DFF_WINDOW_S",
    "SIGNALS",
    "SUITE2P_FILES",
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
