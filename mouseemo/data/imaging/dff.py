"""dF/F: fluorescence over a running-percentile baseline."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage

from mouseemo.errors import ConfigError, DataError

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
