"""Self-describing checkpoints: what a trained model needs to run on new videos.

A Lightning checkpoint holds weights, but not how to rebuild the networks (they are injected) nor
how frames were prepared for them. :class:`RecordConfig`, added to every trainer by
:func:`mouseemo.tasks.train`, stores both under ``checkpoint["mouseemo"]``:

* ``model``: the resolved Hydra model config (``_target_`` and all), so the module can be rebuilt
  without the run directory;
* ``data``: the preprocessing the model saw (``crop``, ``image_size``, ``classes``, and
  ``clip_length``/``clip_step``: frames per input of a temporal model, 1 for frame models;
  ``reference``/``reference_frames``: the session reference frame the model compares with, if any);
* ``version``: the mouseemo version that wrote it.

:func:`load_model` rebuilds the module from that record and loads the weights, e.g. for
``mouseemo predict --ckpt``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from mouseemo import __version__
from mouseemo.errors import DataError

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


class RecordConfig(pl.Callback):
    """Writes :func:`checkpoint_record` into every checkpoint the trainer saves."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict
    ) -> None:
        checkpoint[RECORD_KEY] = self.record

    def state_dict(self) -> dict:
        return {}


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


def read_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint dict on the CPU; :class:`DataError` for a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means an unusable file
        raise DataError(f"cannot read checkpoint {path}: {err}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise DataError(f"{path} is not a Lightning checkpoint (no state_dict)")
    return ckpt


def load_model(path: str | Path, device: torch.device | str = "cpu") -> LoadedModel:
    """Rebuild the module recorded in checkpoint ``path``, load its weights, and put it in eval mode.

    Raises:
        DataError: the file is missing, unreadable, not a mouseemo checkpoint, or its weights do not
            fit the recorded model.
    """
    from hydra.utils import instantiate

    from mouseemo.data.video import parse_crop

    path = Path(path)
    ckpt = read_checkpoint(path)
    record = ckpt.get(RECORD_KEY)
    if not isinstance(record, dict) or "model" not in record:
        raise DataError(
            f"{path} carries no mouseemo model record (it was not written by `mouseemo train`); "
            "evaluate it with `python evaluate.py ckpt_path=... model=...` instead"
        )
    try:
        module = instantiate(record["model"])
    except Exception as err:  # noqa: BLE001 - a record from another mouseemo version
        raise DataError(
            f"{path}: cannot rebuild its model ({record['model'].get('_target_')}): {err}"
        ) from None
    module.on_load_checkpoint(ckpt)
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
    )
