"""Self-describing checkpoints: what a trained model needs to run on new videos.

A Lightning checkpoint holds weights, but not how to rebuild the networks (they are injected) nor
how frames were prepared for them. :class:`RecordConfig`, added to every trainer by
:func:`mouseemo.tasks.train`, stores both under ``checkpoint["mouseemo"]``:

* ``model``: the resolved Hydra model config (``_target_`` and all), so the module can be rebuilt
  without the run directory;
* ``data``: the preprocessing the model saw (``crop``, ``image_size``, ``classes``, and
  ``clip_length``/``clip_step``: frames per input of a temporal model, 1 for frame models;
  ``reference``/``reference_frames``: the session reference frame the model compares with, if any;
  ``trial_baseline_s``: for ``reference=trial``, the pre-stimulus window of the training trials,
  the median ``trigger - onset`` of their ``trials.csv``, so new videos need only stimulus onsets);
* ``version``: the mouseemo version that wrote it.

:func:`load_model` rebuilds the module from that record and loads the weights, e.g. for
``mouseemo predict --ckpt``.

What mouseemo loads from a checkpoint, and what it does not
-----------------------------------------------------------
A checkpoint is read as data: :func:`read_checkpoint` (and Lightning, for ``ckpt_path=`` of
``train.py``/``evaluate.py``, which mouseemo calls with ``weights_only=True`` after checking the file
with :func:`read_checkpoint`) uses ``torch.load(weights_only=True)``. It accepts tensors, numbers,
strings, bytes, ``None`` and lists, tuples, sets and dicts of those, which is all that mouseemo's own
checkpoints hold (no types are allow-listed beyond torch's defaults): :class:`RecordConfig` turns the
hyper-parameters Lightning stores (omegaconf containers, Hydra partials of optimisers and schedulers,
paths) into plain values with :func:`plain_data`, the prototype models store a ``.npz`` (read with
``allow_pickle=False``) and ``hog_rf`` its forest as arrays (:mod:`mouseemo.models.forest_state`).
A file holding any other pickled object (a class instance, a function) is refused with a
:class:`DataError` before anything in it runs; so are checkpoints of older mouseemo versions, which
stored such objects: train them again.

The model record is rebuilt only if every ``_target_`` in it, nested ones too, names a mouseemo model
class, a torch optimiser or scheduler, or a torchvision builder
(:func:`mouseemo.models.safe_config.check_targets`); any other target is refused, naming it.
"""

from __future__ import annotations

import functools
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from mouseemo import __version__
from mouseemo.data.crop import parse_crop
from mouseemo.errors import ConfigError, DataError
from mouseemo.models.safe_config import check_targets

RECORD_KEY = "mouseemo"

#: Data settings that decide what a frame looks like when it reaches the model.
PREPROCESSING_KEYS = (
    "crop", "image_size", "classes", "clip_length", "clip_step", "reference", "reference_frames",
)  # fmt: skip


def checkpoint_record(cfg: DictConfig) -> dict[str, Any]:
    """The record stored in checkpoints of a run configured by ``cfg`` (plain, picklable types)."""
    model = OmegaConf.to_container(cfg.model, resolve=True)
    data = OmegaConf.to_container(cfg.data, resolve=True) if "data" in cfg else {}
    return {
        "version": __version__,
        "model": model,
        "data": {k: data.get(k) for k in PREPROCESSING_KEYS},
    }


#: Checkpoint entries :class:`RecordConfig` turns into plain data.
HYPER_PARAMETER_KEYS = ("hyper_parameters", "datamodule_hyper_parameters")


def plain_data(value: Any) -> Any:
    """``value`` as types ``torch.load(weights_only=True)`` reads: omegaconf containers become dicts
    and lists, partials (``_partial_: true`` optimisers and schedulers) their config
    (``{"_target_": ..., "_partial_": True, ...}``), classes and functions their dotted name, paths
    and other objects strings; tensors, numbers, strings, bytes and ``None`` stay as they are."""
    if value is None or isinstance(value, bool | int | float | str | bytes | torch.Tensor):
        return value
    try:
        from omegaconf import Container

        if isinstance(value, Container):
            return plain_data(OmegaConf.to_container(value, resolve=True))
    except ImportError:  # pragma: no cover - omegaconf comes with hydra
        pass
    if isinstance(value, Mapping):
        return {(k if isinstance(k, str | int) else str(k)): plain_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain_data(v) for v in value]
    if isinstance(value, functools.partial):
        out: dict[str, Any] = {"_target_": _dotted(value.func), "_partial_": True}
        if value.args:
            out["_args_"] = plain_data(list(value.args))
        out.update({k: plain_data(v) for k, v in (value.keywords or {}).items()})
        return out
    if isinstance(value, type) or callable(value) and hasattr(value, "__qualname__"):
        return _dotted(value)
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return plain_data(value.tolist())
    except ImportError:  # pragma: no cover
        pass
    return str(value)


def _dotted(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '') or ''}.{getattr(obj, '__qualname__', repr(obj))}".lstrip(".")


class RecordConfig(pl.Callback):
    """Writes :func:`checkpoint_record` into every checkpoint the trainer saves, and turns the
    hyper-parameters Lightning stored there into plain data (:func:`plain_data`), so that the
    checkpoint loads with ``torch.load(weights_only=True)``."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict
    ) -> None:
        data = self.record.get("data")
        if (
            isinstance(data, dict)
            and data.get("reference") == "trial"
            and data.get("trial_baseline_s") is None
        ):
            data["trial_baseline_s"] = _trial_baseline_s(trainer)
        if isinstance(data, dict) and data.get("crop") is None:  # the sessions' own crop (session.json)
            data["crop"] = _sessions_crop(trainer)
        checkpoint[RECORD_KEY] = plain_data(self.record)
        for key in HYPER_PARAMETER_KEYS:
            if key in checkpoint:
                checkpoint[key] = plain_data(checkpoint[key])
        checkpoint.pop("hparams_type", None)  # a class, when the hyper-parameters were a Container

    def state_dict(self) -> dict:
        return {}


def _trial_baseline_s(trainer: pl.Trainer) -> float | None:
    """The pre-stimulus window of the trials the datamodule read (``None`` without any)."""
    from mouseemo.data.trials import TRIALS_FILE, baseline_seconds, read_trials

    sessions = getattr(getattr(trainer, "datamodule", None), "sessions", None) or []
    paths = [s.session.path / TRIALS_FILE for s in sessions if hasattr(s, "session")]
    return baseline_seconds([read_trials(p) for p in paths if p.is_file()])


def _sessions_crop(trainer: pl.Trainer) -> list[int] | None:
    """The crop every session of the datamodule was read with (their ``session.json``'s), when they
    share one; ``None`` otherwise, so a video scored later is cropped only as its user says."""
    dm = getattr(trainer, "datamodule", None)
    crop = dm.frames_crop() if hasattr(dm, "frames_crop") else None
    return list(crop) if crop is not None else None


@dataclass
class LoadedModel:
    """A trained module ready for inference, with the preprocessing it expects.

    Attributes:
        module: the LightningModule in eval mode on ``device``.
        classes: class names in index order.
        crop: ``(x, y, w, h)`` the training frames were cropped with, or ``None``.
        image_size: ``(H, W)`` frames are resized to before the model, or ``None``.
        score_prefix: ``prob`` (classifiers) or ``similarity`` (prototype models).
        score_names: names of the score columns, in order.
        path: the checkpoint file.
        clip_length: frames per model input: 1 for frame models (``image`` ``(B,1,H,W)``), T > 1
            for temporal models (``frames`` ``(B,T,1,H,W)``, the last frame is the one scored).
        clip_step: frames between the members of a clip.
        reference: ``"median"`` when the model compares each frame with its session's reference
            frame (the median of ``reference_frames`` frames spread over the video), else ``None``.
        reference_frames: frames that median is taken over.
        trial_baseline_s: for ``reference="trial"``: seconds before each stimulus onset whose frames
            made the trial's reference in training (``None``: not recorded).
    """

    module: pl.LightningModule
    classes: list[str]
    crop: tuple[int, int, int, int] | None
    image_size: tuple[int, int] | None
    score_prefix: str
    score_names: list[str]
    path: Path
    clip_length: int = 1
    clip_step: int = 1
    reference: str | None = None
    reference_frames: int = 300
    trial_baseline_s: float | None = None


def read_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint dict on the CPU, as data only (``torch.load(weights_only=True)``).

    Raises:
        DataError: the file is missing or unreadable, or it holds a pickled object other than plain
            data (tensors, numbers, strings, containers): such an object is never built, so no code
            in the file runs.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise DataError(_refusal(path, err)) from None
    except Exception as err:  # noqa: BLE001 - any loading failure means an unusable file
        raise DataError(f"cannot read checkpoint {path}: {_first_line(err)}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise DataError(f"{path} is not a Lightning checkpoint (no state_dict)")
    return ckpt


_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


def _first_line(err: BaseException) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _refusal(path: Path, err: BaseException) -> str:
    """One line for a checkpoint ``torch.load(weights_only=True)`` refused."""
    found = _GLOBAL.search(str(err))
    if found is None:  # not a pickled object: a corrupt file, or pickle operations torch refuses
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
        after = text.split("WeightsUnpickler error:", 1)[-1] if "WeightsUnpickler error:" in text else ""
        detail = next((ln.strip() for ln in after.splitlines() if ln.strip()), _first_line(err))
        return f"cannot read checkpoint {path}: not a checkpoint mouseemo can read as data ({detail})"
    name = found.group(1)
    hint = ""
    if name.split(".")[0] in ("omegaconf", "hydra"):
        hint = "; checkpoints of older mouseemo versions held such objects: train the model again"
    return (
        f"cannot load checkpoint {path}: it contains a pickled object of type {name} that mouseemo "
        f"does not load (checkpoints are read as data only){hint}"
    )


def load_model(path: str | Path, device: torch.device | str = "cpu") -> LoadedModel:
    """Rebuild the module recorded in checkpoint ``path``, load its weights, and put it in eval mode.

    The recorded model config is instantiated only after :func:`check_targets` accepted every
    ``_target_`` in it.

    Raises:
        DataError: the file is missing, unreadable, holds pickled objects, is not a mouseemo
            checkpoint, names a target other than mouseemo models, torch optimisers/schedulers and
            torchvision builders, or its weights do not fit the recorded model.
    """
    from hydra.utils import instantiate

    path = Path(path)
    ckpt = read_checkpoint(path)
    record = ckpt.get(RECORD_KEY)
    if not isinstance(record, dict) or not isinstance(record.get("model"), dict):
        raise DataError(
            f"{path} carries no mouseemo model record (it was not written by `mouseemo train`); "
            "evaluate it with `python evaluate.py ckpt_path=... model=...` instead"
        )
    check_targets(record["model"], path)
    try:
        module = instantiate(record["model"])
    except Exception as err:  # noqa: BLE001 - a record from another mouseemo version
        raise DataError(
            f"{path}: cannot rebuild its model ({record['model'].get('_target_')}): {err}"
        ) from None
    try:
        module.on_load_checkpoint(ckpt)
    except DataError as err:
        raise DataError(str(err) if str(path) in str(err) else f"{path}: {err}") from None
    result = module.load_state_dict(ckpt["state_dict"], strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise DataError(
            f"{path}: weights do not fit the recorded model: missing {result.missing_keys[:3]}, "
            f"unexpected {result.unexpected_keys[:3]}"
        )
    module.to(device).eval()
    data = record.get("data") or {}
    classes = list(data.get("classes") or getattr(module, "classes", []))
    size = data.get("image_size")
    names = module.score_names() if hasattr(module, "score_names") else classes
    return LoadedModel(
        module=module,
        classes=classes,
        crop=parse_crop(data["crop"]) if data.get("crop") else None,
        image_size=(int(size[0]), int(size[1])) if size else None,
        score_prefix=getattr(module, "score_prefix", "prob"),
        score_names=list(names),
        path=path,
        clip_length=int(data.get("clip_length") or getattr(module, "clip_length", 1)),
        clip_step=int(data.get("clip_step") or 1),
        reference=getattr(module, "reference", None),
        reference_frames=int(data.get("reference_frames") or 300),
        trial_baseline_s=float(data["trial_baseline_s"]) if data.get("trial_baseline_s") else None,
    )


def init_weights_from(model: pl.LightningModule, path: str | Path) -> dict[str, Any]:
    """Start ``model``'s network from the trained network in checkpoint ``path`` (``model.init_from``).

    The checkpoint is read as data (:func:`read_checkpoint`). It must hold the same kind of network
    (its recorded ``net._target_``) with the same layer shapes; only the final class layer may differ
    (another class list), and it then starts fresh. Everything else (optimiser, epoch, class weights)
    starts anew: this is fine-tuning, not resuming (``ckpt_path=`` resumes).

    Returns:
        ``{"loaded": n_tensors, "fresh": [keys started fresh]}``.

    Raises:
        ConfigError: not a classifier checkpoint, another network, or layers of other shapes.
    """
    net = getattr(model, "net", None)
    if net is None or not getattr(model, "supports_init_from", False):
        raise ConfigError(
            f"model.init_from works with the learned classifiers (cnn, motion_cnn, resnet18, ...); "
            f"{type(model).__name__} has no network to start from {path}"
        )
    ckpt = read_checkpoint(path)
    record = ckpt.get(RECORD_KEY) or {}
    theirs = ((record.get("model") or {}).get("net") or {}).get("_target_")
    ours = f"{type(net).__module__}.{type(net).__qualname__}"
    if theirs is None or not any(k.startswith("net.") for k in ckpt["state_dict"]):
        raise ConfigError(f"model.init_from={path} is not a checkpoint of a learned classifier")
    if theirs.rsplit(".", 1)[-1] != ours.rsplit(".", 1)[-1]:
        raise ConfigError(
            f"model.init_from={path} holds a {theirs.rsplit('.', 1)[-1]} network but this model builds "
            f"{ours.rsplit('.', 1)[-1]}: start from a checkpoint of the same model"
        )
    state = {k[4:]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    num_classes = len(getattr(model, "classes", ()))
    fresh, bad = [], []
    for key in sorted(set(own) & set(state)):
        if state[key].shape == own[key].shape:
            continue
        # the class layer (its first dimension is the class count) may change with the class list
        if (
            own[key].ndim in (1, 2)
            and own[key].shape[0] == num_classes
            and state[key].shape[1:] == own[key].shape[1:]
        ):
            fresh.append(key)
            del state[key]
        else:
            bad.append(f"{key} {tuple(state[key].shape)} vs {tuple(own[key].shape)}")
    if missing or unexpected or bad:
        parts = [f"other shapes: {', '.join(bad[:3])}" if bad else "",
                 f"missing: {', '.join(missing[:3])}" if missing else "",
                 f"unexpected: {', '.join(unexpected[:3])}" if unexpected else ""]  # fmt: skip
        raise ConfigError(
            f"model.init_from={path} was made for another network configuration "
            f"({'; '.join(p for p in parts if p)}): its widths, input channels (model.reference, "
            "clip_length) and depth must match"
        )
    net.load_state_dict(state, strict=False)
    return {"loaded": len(state), "fresh": fresh}
