"""CaImAn CNMF output (``.npz``), loaded without running pickled code."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from mouseemo.data.imaging.suite2p import check_finite
from mouseemo.data.imaging.traces import ActivityTraces, NeuronsByFrames
from mouseemo.errors import ConfigError, DataError
from mouseemo.utils import safe_pickle

#: Why a CaImAn object array that names anything else is refused (its results also hold SciPy sparse
#: matrices).
CAIMAN_PICKLE_RULE = "CaImAn files may only hold arrays, sparse matrices, dicts, lists, numbers and strings"


@dataclass
class CaimanRecording(NeuronsByFrames):
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
    check_finite(C, path)
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
