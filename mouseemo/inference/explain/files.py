"""The files of ``mouseemo explain``: maps, frames and figures written together, and the command."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from mouseemo.errors import ConfigError
from mouseemo.inference.explain.frames import MAX_FRAMES, MAX_IG_STEPS, parse_frame_ranges
from mouseemo.inference.explain.maps import hog_prototypes_of, prototype_maps
from mouseemo.inference.explain.video import Explanation, explain_video
from mouseemo.inference.inputs import resolve_inputs
from mouseemo.models.prototypes_io import Prototypes


def _titles(method: str) -> str:
    return {
        "contrib": "per-cell contribution to similarity (emotion: minus neutral's)",
        "gradcam": "Grad-CAM, last conv block",
        "ig": "integrated gradients",
        "prototype": "prototype - neutral, HOG norm per cell",
    }[method]


def write_explanation(result: Explanation, out_dir, stem: str, overwrite: bool = False) -> list:
    """Write ``<stem>.explain.npz`` and one ``<stem>_frame<N>.png`` per frame (plus
    ``<stem>_prototypes.png`` for HOG models) into ``out_dir``; all are drawn first, then each is
    written under a temporary name and renamed, so a failure leaves no file that looks complete."""
    from mouseemo.viz.explain import explanation_figure

    out_dir = Path(out_dir)
    files: dict[Path, bytes] = {}
    prefix = "similarity" if result.method == "contrib" else "p"
    scale_rows = None  # neutral's own similarity contributions would set the scale of every panel
    if result.method == "contrib" and "neutral" in result.names and len(result.names) > 1:
        scale_rows = [k for k, n in enumerate(result.names) if n != "neutral"]
    for i, f in enumerate(result.frames):
        subs = [f"({prefix} {s:.3f})" if prefix == "p" else f"({s:.3f})" for s in result.scores[i]]
        png = explanation_figure(
            result.images[i], result.maps[i], result.names,
            f"{stem} frame {int(f)}: {_titles(result.method)}", subs, scale_rows=scale_rows,
        )  # fmt: skip
        files[out_dir / f"{stem}_frame{int(f):06d}.png"] = png
    arrays = {
        "maps": result.maps.astype(np.float32),
        "frames": np.asarray(result.frames, dtype=np.int64),
        "names": np.array(result.names, dtype=np.str_),
        "method": np.array(result.method, dtype=np.str_),
        "scores": np.asarray(result.scores, dtype=np.float32),
        "images": np.asarray(result.images, dtype=np.uint8),
    }
    if result.prototype_maps is not None:
        arrays["prototype_maps"] = result.prototype_maps.astype(np.float32)
        img = result.images[0] if len(result.images) else None
        files[out_dir / f"{stem}_prototypes.png"] = explanation_figure(
            img, result.prototype_maps, result.names, f"{stem}: {_titles('prototype')}"
        )
    return _write_all(files, arrays, out_dir / f"{stem}.explain.npz", overwrite)


def write_prototype_maps(
    protos: Prototypes, out_dir, stem: str = "prototypes", overwrite: bool = False
) -> list:
    """The prototype-difference maps alone (no video; the paper's figure): ``<stem>.explain.npz``
    (``prototype_maps (K, H, W)``, ``names``, ``method="prototype"``, empty ``maps``/``frames``) and
    ``<stem>.png``, at the prototypes' frame size."""
    from mouseemo.viz.explain import explanation_figure

    out_dir = Path(out_dir)
    pm = prototype_maps(protos)
    k = len(protos.names)
    png = explanation_figure(None, pm, protos.names, f"{stem}: {_titles('prototype')}")
    arrays = {
        "maps": np.zeros((0, k, *pm.shape[-2:]), np.float32),
        "frames": np.zeros(0, np.int64),
        "names": np.array(protos.names, dtype=np.str_),
        "method": np.array("prototype", dtype=np.str_),
        "prototype_maps": pm,
    }
    return _write_all({out_dir / f"{stem}.png": png}, arrays, out_dir / f"{stem}.explain.npz", overwrite)


def _previous_outputs(npz) -> set:
    """The files the run that wrote ``npz`` (``<stem>.explain.npz``) wrote beside it, by its record."""
    npz = Path(npz)
    stem = npz.name[: -len(".explain.npz")]
    try:
        with np.load(npz, allow_pickle=False) as old:
            frames = [int(f) for f in np.asarray(old["frames"]).ravel()[:MAX_FRAMES]]
            method, has_protos = str(old["method"]), "prototype_maps" in old.files
    except Exception:  # noqa: BLE001 - not a file mouseemo wrote: nothing beside it is known to be ours
        return set()
    names = {npz.parent / f"{stem}_frame{f:06d}.png" for f in frames}
    if method == "prototype":
        names.add(npz.parent / f"{stem}.png")
    elif has_protos:
        names.add(npz.parent / f"{stem}_prototypes.png")
    return names


def _write_all(files: dict, arrays: dict, npz, overwrite: bool) -> list:
    """Write ``files`` (path -> bytes) and ``npz`` to temporary names, then rename them all, ``npz``
    last; an interrupt before the renames leaves nothing. A rerun with ``overwrite`` then removes the
    files the previous run recorded in ``npz`` that this one does not write."""
    from contextlib import ExitStack

    from mouseemo.utils.io import atomic_path, remove_stale_temps

    targets = [npz, *files]
    for p in targets:
        if p.is_dir():
            raise ConfigError(f"{p} is a folder; mouseemo writes a file there")
        if not overwrite and (p.exists() or p.is_symlink()):
            raise ConfigError(f"{p} exists; set `overwrite` to replace it")
    remove_stale_temps(npz.parent)
    stale = _previous_outputs(npz) - set(targets) if overwrite and npz.is_file() else set()
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    files = {**files, npz: buf.getvalue()}
    with ExitStack() as stack:
        # entered npz first, so renamed last: the record names only files that are in place
        for path in reversed(list(files)):
            stack.enter_context(atomic_path(path)).write_bytes(files[path])
    for path in stale:
        if path.is_file() and not path.is_symlink():
            path.unlink()
    return targets


def run_explain(
    video=None,
    prototypes=None,
    ckpt=None,
    frames: str | None = None,
    out_dir=".",
    method: str | None = None,
    crop=None,
    device="cpu",
    overwrite: bool = False,
    ig_steps: int = 32,
) -> list:
    """``mouseemo explain``: maps of ``frames`` of ``video`` (a file or session folder) written into
    ``out_dir``, or, with
    prototypes and no video, the prototype-difference maps alone. Returns the files written."""
    from mouseemo.inference.explain.attribution import CHECKPOINT_METHODS, require_captum
    from mouseemo.inference.scorers import load_scorer

    if not 1 <= ig_steps <= MAX_IG_STEPS:
        raise ConfigError(f"`ig_steps` must be 1 to {MAX_IG_STEPS}; got {ig_steps}")
    if method is not None and method not in CHECKPOINT_METHODS:
        raise ConfigError(f"`method` must be one of {list(CHECKPOINT_METHODS)}; got {method!r}")
    if video is None:
        if prototypes is None or ckpt is not None:
            raise ConfigError("without a `video`, give `prototypes` (its maps are drawn alone)")
        if frames is not None or crop is not None or method is not None:
            raise ConfigError("`frames`, `crop` and `method` need a `video`")
        protos = Prototypes.load(prototypes)
        return write_prototype_maps(protos, out_dir, Path(prototypes).stem, overwrite)
    if frames is None:
        raise ConfigError("give `frames` (e.g. 10,20,100-120) to explain frames of a video")
    parse_frame_ranges(frames)  # its errors before the model is loaded
    # a session folder: its face video, named as predict names it, and its session.json crop
    (item,) = resolve_inputs([str(video)], None, need_events=False)
    scorer = load_scorer(prototypes, ckpt, device)
    if hog_prototypes_of(scorer) is None:
        require_captum()  # before any decoding
    result = explain_video(item.video, scorer, frames, method, crop, ig_steps, meta=item.meta)
    return write_explanation(result, out_dir, item.stem, overwrite)
