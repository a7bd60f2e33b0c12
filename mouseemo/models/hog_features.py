"""What the HOG LightningModules share: HOG on the device, the training pass, each session's neutral.

:class:`HogFeatureModule` computes the HOG of every frame on the device (:func:`mouseemo.ops.hog`),
collects one pass over the training frames and fits at its end (:class:`HogProtoLitModule
<mouseemo.models.hog_proto_module.HogProtoLitModule>`: prototypes; :class:`HogRFLitModule
<mouseemo.models.hog_rf_module.HogRFLitModule>`: a random forest). Validation and test frames are
scored with the same :class:`~mouseemo.models.metrics.StageMetrics` as the CNN classifiers, so numbers
are comparable.

Both read the datamodules' batches unchanged (``image`` uint8 ``(B,1,H,W)``, ``label``, ``t_cam``,
``frame``, ``animal``, ``session``). With ``resolution="data"`` HOG sees the frames as the datamodule
delivers them, i.e. resized to ``data.image_size``: choose ``pixels_per_cell`` for that size (the
configs' 24 px give 3 x 4 cells at 72 x 96; finer cells read each animal's camera position more than
its expression, and a held-out animal is called neutral throughout: ``benchmarks/hog_collapse.py``).
With ``resolution="native"`` the module reads the same frames (same crop, same indices) at full
resolution (:meth:`~mouseemo.data.face_datamodule.FaceFramesDataModule.session_frames`), so the
paper's 32-px cells see full 240 x 320 crops while the networks keep their small frames
(``conf/model/hog_proto_paper.yaml``).

**Each session's own neutral.** The paper reads a new animal's expressions as changes from *its own*
neutral face. Every session's neutral is the mean HOG of its baseline frames (``events.csv``: its
``neutral`` windows, else the frames before its first stimulus; up to ``neutral_frames`` of them,
evenly spread), or, when it has none, the HOG of its reference (median) frame, with a warning naming
the session (:mod:`mouseemo.data.session_neutral`). ``neutral`` chooses how it is used:

* ``"own"`` (``hog_proto``'s default): per training session, emotion prototypes are built against that
  session's neutral and kept as changes (prototype - neutral); changes are averaged per animal, then
  over animals. A test frame is compared (Pearson) with *its session's* neutral and with that neutral
  plus each change (:func:`mouseemo.models.components.prototypes.carry_to_neutral`).
* ``"subtract"`` (``hog_rf``'s default): features are HOG minus the session's neutral, for fitting and
  for scoring (per-session normalisation).
* ``"training"``: the training animals' pooled neutral and prototypes for every animal (not how the
  paper treats a new animal).
* ``"trial"`` (``hog_rf_trial``): features are the frame's HOG minus the HOG of its own trial's
  pre-stimulus face (``data.reference=trial``): the face's change in shape since the stimulus.

``neutral_source="reference"`` makes every session's neutral its reference (median) frame, so the
model needs no stimulus log at test time (the log-free track of the tail-shock benchmark).

How the choices compare is measured in ``docs/results.md``.

The pass stops training after one epoch (``trainer.should_stop``), whatever ``trainer.max_epochs``
says: more epochs would only recompute the same features.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from mouseemo.constants import EMOTIONS
from mouseemo.data.events import IGNORE_INDEX
from mouseemo.data.session_neutral import neutral_frames
from mouseemo.data.video import session_reference
from mouseemo.errors import ConfigError, DataError
from mouseemo.models.metrics import StageMetrics
from mouseemo.models.outputs import EvalOutputsMixin
from mouseemo.models.prototypes_io import hog_params
from mouseemo.ops import hog

#: ``model.neutral_source``: a session's neutral from its ``baseline`` frames (``events.csv``'s neutral
#: windows, else the frames before its first stimulus: needs the stimulus log), or from its
#: ``reference`` (median) frame alone (no stimulus log).
NEUTRAL_SOURCES: tuple[str, ...] = ("baseline", "reference")

#: ``model.resolution``: ``data`` frames as the datamodule delivers them (resized to
#: ``data.image_size``), or ``native`` full-resolution crops read for the model.
RESOLUTIONS: tuple[str, ...] = ("data", "native")


class HogFeatureModule(EvalOutputsMixin, pl.LightningModule):
    """Shared machinery: HOG on the device, collecting the training pass, metrics, test rows.

    Subclasses implement :meth:`_fit` (from the collected training features) and :meth:`_scores`
    (per-frame scores and predicted class indices).
    """

    score_prefix = "score"
    #: Frames per input: HOG models score single frames (``image`` ``(B,1,H,W)``).
    clip_length = 1

    #: ``neutral`` options this model accepts (see :data:`NEUTRAL_MODES`).
    neutral_modes: tuple[str, ...] = ("training", "subtract")

    def __init__(
        self,
        hog: dict | None = None,
        classes: Sequence[str] = EMOTIONS,
        neutral: str = "training",
        resolution: str = "data",
        neutral_frames: int = 300,
        neutral_source: str = "baseline",
        reference: str | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.hog_kwargs = hog_params(**dict(hog or {}))
        if neutral not in self.neutral_modes:
            raise ConfigError(f"model.neutral must be one of {list(self.neutral_modes)}; got {neutral!r}")
        if neutral_source not in NEUTRAL_SOURCES:
            raise ConfigError(
                f"model.neutral_source must be one of {list(NEUTRAL_SOURCES)}; got {neutral_source!r}"
            )
        if (neutral == "trial") != (reference == "trial") or (neutral == "trial" and resolution != "data"):
            raise ConfigError(
                "model.neutral=trial (HOG minus the HOG of the trial's pre-stimulus face) goes with "
                f"model.reference=trial and resolution=data; got reference={reference}, resolution={resolution}"
            )
        self.neutral_source = neutral_source
        self.reference = reference
        if resolution not in RESOLUTIONS:
            raise ConfigError(f"model.resolution must be one of {list(RESOLUTIONS)}; got {resolution!r}")
        if int(neutral_frames) < 1:
            raise ConfigError(f"model.neutral_frames must be >= 1; got {neutral_frames}")
        self.neutral_mode = neutral
        self.resolution = resolution
        self.neutral_frames = int(neutral_frames)
        #: per session (``animal/session``): its neutral HOG, and where it came from
        self.neutrals: dict[str, np.ndarray] = {}
        self.neutral_sources: dict[str, str] = {}
        self._native: dict[str, np.ndarray] = {}
        self.classes = list(classes)
        self.metrics = nn.ModuleDict({s: StageMetrics(s, self.classes) for s in ("val", "test")})
        self.test_rows: list[tuple] = []
        self.test_confmat: torch.Tensor | None = None
        self.frame_size: tuple[int, int] | None = None
        self._store: list[dict[str, Any]] = []
        self._fitted_epoch: int | None = None
        self._updated = {"val": False, "test": False}

    # -- frames at the model's resolution, and each session's neutral ------------------------------
    def _datamodule(self, what: str):
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        if dm is None or not getattr(dm, "sessions", None):
            raise ConfigError(
                f"{type(self).__name__} with {what} needs the sessions of a FaceFramesDataModule "
                "(data=synthetic or data=sessions)"
            )
        return dm

    def _session_frames(self, dm, sf) -> np.ndarray:
        """``(T, H, W)`` uint8 frames of one session at the model's resolution (a memmap)."""
        if self.resolution == "data":
            return np.load(sf.cache_path, mmap_mode="r")
        if sf.name not in self._native:
            self._native[sf.name] = dm.session_frames(sf.session, size=None)
        return self._native[sf.name]

    def images(self, batch: dict) -> torch.Tensor:
        """The batch's frames at the model's resolution: ``image`` as delivered (``resolution=data``),
        or the same frames from the full-resolution cache of their crops (``resolution=native``).
        """
        if self.resolution == "data":
            return batch["image"]
        dm = self._datamodule("resolution=native")
        by_name = {sf.name: sf for sf in dm.sessions}
        frames = [
            self._session_frames(dm, by_name[f"{a}/{s}"])[int(f)]
            for a, s, f in zip(batch["animal"], batch["session"], batch["frame"])
        ]
        return torch.from_numpy(np.stack(frames))[:, None].to(batch["image"].device)

    def _ensure_neutrals(self) -> None:
        """HOG of every session's own neutral: the mean over its baseline frames
        (:func:`~mouseemo.data.session_neutral.neutral_frames`), or the HOG of its reference (median)
        frame, with a warning, when it has none."""
        if self.neutral_mode in ("training", "trial"):
            return
        dm = self._datamodule(f"neutral={self.neutral_mode}")
        for sf in dm.sessions:
            if sf.name in self.neutrals:
                continue
            frames = self._session_frames(dm, sf)
            idx = None
            if self.neutral_source == "baseline":
                idx = neutral_frames(sf.session, sf.times, self.neutral_frames)
            if idx is None:
                ref = session_reference(frames, self.neutral_frames)
                self.neutrals[sf.name] = self._hog_numpy(ref[None])[0]
                self.neutral_sources[sf.name] = "reference"
            else:
                self.neutrals[sf.name] = self._hog_numpy(np.asarray(frames[idx])).mean(axis=0)
                self.neutral_sources[sf.name] = f"pre-stimulus ({len(idx)} frames)"

    def _hog_numpy(self, frames: np.ndarray, chunk: int = 256) -> np.ndarray:
        out = [
            self.features(torch.from_numpy(np.ascontiguousarray(frames[i : i + chunk])).to(self.device))
            .cpu()
            .numpy()
            .astype(np.float64)
            for i in range(0, len(frames), chunk)
        ]
        return np.concatenate(out)

    def neutral_of(self, groups: Sequence[str]) -> np.ndarray:
        """``(B, D)`` neutral HOG of each frame's session (``animal/session`` names)."""
        if any(g not in self.neutrals for g in groups):
            self._ensure_neutrals()
        missing = sorted({g for g in groups if g not in self.neutrals})
        if missing:
            raise DataError(
                f"no neutral HOG for session(s) {missing}: they are not among the datamodule's sessions"
            )
        return np.stack([self.neutrals[g] for g in groups])

    def normalise(self, feats: np.ndarray, groups: Sequence[str]) -> np.ndarray:
        """Features as the model uses them: minus each frame's session neutral with ``neutral=subtract``."""
        if self.neutral_mode != "subtract":
            return feats
        return np.asarray(feats, dtype=np.float64) - self.neutral_of(groups)

    # -- features ---------------------------------------------------------------------------------
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """HOG of a batch of gray frames, on their device.

        Shape:
            ``(B, 1, H, W)`` or ``(B, H, W)`` -> ``(B, D)`` float32.
        """

        x = images[:, 0] if images.ndim == 4 else images
        with torch.no_grad():
            return hog(x, **self.hog_kwargs).float()

    @property
    def is_fitted(self) -> bool:
        raise NotImplementedError

    # -- the training pass ------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        self._store = []

    def batch_features(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """``(frames at the model's resolution, their features (B, D))`` of a batch; with
        ``neutral=trial`` the features are HOG minus the HOG of the item's trial reference."""
        images = self.images(batch)
        if self.neutral_mode != "trial":
            return images, self.features(images)
        if "reference" not in batch:
            raise ConfigError("model.neutral=trial needs data.reference=trial (each frame's trial reference)")
        return images, self.features(images) - self.features(batch["reference"])

    def training_step(self, batch: dict, batch_idx: int) -> None:
        images, feats = self.batch_features(batch)
        # A no-op step of Lightning's placeholder optimizer advances global_step: checkpoint callbacks
        # skip saving while it is unchanged.
        opt = self.optimizers()
        (opt[0] if isinstance(opt, list) else opt).step()
        if self.frame_size is None:
            self.frame_size = tuple(int(v) for v in images.shape[-2:])
        self._store.append(
            {
                "features": feats.cpu().numpy(),
                "label": batch["label"].cpu().numpy().astype(np.int64),
                "t_cam": batch["t_cam"].cpu().numpy().astype(np.float64),
                "frame": batch["frame"].cpu().numpy().astype(np.int64),
                "group": np.array([f"{a}/{s}" for a, s in zip(batch["animal"], batch["session"])]),
                "animal": np.array(list(batch["animal"])),
            }
        )

    def on_train_batch_end(self, outputs: Any, batch: dict, batch_idx: int) -> None:
        # Fit after the last batch: validation and the epoch-end checkpoint callbacks run before the
        # module's own on_train_epoch_end, and must see the fitted model.
        total = self.trainer.num_training_batches
        if isinstance(total, int | float) and batch_idx + 1 >= total:
            self._fit_once()

    def on_validation_epoch_start(self) -> None:
        self._updated["val"] = False
        if self._trainer is not None and self._trainer.training and self._store:
            self._fit_once()

    def on_train_epoch_end(self) -> None:
        if self._store:
            self._fit_once()
        self.trainer.should_stop = True  # one pass is the whole fit

    def _collected(self) -> dict[str, np.ndarray]:
        """Training frames of this epoch from every process, sorted by session and frame."""
        store = self._store
        trainer = self._trainer
        if trainer is not None and trainer.world_size > 1 and torch.distributed.is_initialized():
            gathered: list[list[dict]] = [None] * trainer.world_size  # type: ignore[list-item]
            torch.distributed.all_gather_object(gathered, store)
            store = [part for rank in gathered for part in rank]
        if not store:
            raise DataError("no training frames reached the model")
        cols = {k: np.concatenate([s[k] for s in store]) for k in store[0]}
        keep = cols["label"] != IGNORE_INDEX
        cols = {k: v[keep] for k, v in cols.items()}
        order = np.lexsort((cols["frame"], cols["group"]))
        cols = {k: v[order] for k, v in cols.items()}
        # DistributedSampler pads with repeats; drop duplicate frames
        first = np.ones(len(order), dtype=bool)
        first[1:] = (cols["group"][1:] != cols["group"][:-1]) | (cols["frame"][1:] != cols["frame"][:-1])
        return {k: v[first] for k, v in cols.items()}

    def _fit_once(self) -> None:
        epoch = self.current_epoch
        if self._fitted_epoch == epoch:
            return
        data = self._collected()
        self._ensure_neutrals()
        if self.neutral_mode == "subtract":
            data["features"] = self.normalise(data["features"], data["group"])
        self._fit(data)
        self._fitted_epoch = epoch
        self._store = []

    def _fit(self, data: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def _scores(
        self, feats: torch.Tensor, groups: Sequence[str] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scores (B, S), predicted class indices (B,))`` of features ``(B, D)`` from the sessions
        ``groups`` (``animal/session``; needed unless ``neutral=training``)."""
        raise NotImplementedError

    def _normalised(self, feats: torch.Tensor, groups: Sequence[str] | None) -> torch.Tensor:
        if self.neutral_mode != "subtract":
            return feats
        if groups is None:
            raise ConfigError(
                f"{type(self).__name__} with neutral=subtract scores a frame against its session's neutral "
                "and cannot score frames of an unknown session; fit it with model.neutral=training to score "
                "videos on their own"
            )
        neutral = torch.as_tensor(self.neutral_of(groups), dtype=feats.dtype, device=feats.device)
        return feats - neutral

    def score_names(self) -> list[str]:
        raise NotImplementedError

    # -- evaluation -------------------------------------------------------------------------------
    def forward(self, images: torch.Tensor, groups: Sequence[str] | None = None) -> torch.Tensor:
        """Per-frame scores (similarities or class probabilities) of ``(B, 1, H, W)`` frames of the
        sessions ``groups`` (``animal/session`` names; needed unless ``neutral=training``)."""
        if self.neutral_mode == "trial":
            raise ConfigError(
                f"{type(self).__name__} with neutral=trial reads each frame against its trial's "
                "pre-stimulus face: score it through a datamodule with data.reference=trial"
            )
        return self._scores(self.features(images), groups)[0]

    def _eval_step(self, stage: str, batch: dict) -> tuple[torch.Tensor, torch.Tensor] | None:
        if not self.is_fitted:
            if self._trainer is not None and self._trainer.sanity_checking:
                return None
            raise ConfigError(
                f"{type(self).__name__} has not been fitted: train it first or pass ckpt_path=... "
                "of a fitted checkpoint"
            )
        images, feats = self.batch_features(batch)
        self._check_frame_size(tuple(int(v) for v in images.shape[-2:]))
        scores, preds = self._scores(feats, batch_groups(batch))
        self.metrics[stage].update(preds, batch["label"])
        self._updated[stage] = True
        return scores, preds

    def _check_frame_size(self, size: tuple[int, int]) -> None:
        pass

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step("val", batch)

    def on_validation_epoch_end(self) -> None:
        if self._updated["val"]:
            self._log_stage("val")
        self._updated["val"] = False

    def on_test_epoch_start(self) -> None:
        self.test_rows = []
        self._updated["test"] = False

    def test_step(self, batch: dict, batch_idx: int) -> None:
        out = self._eval_step("test", batch)
        if out is None:
            return
        scores, preds = (t.detach().float().cpu() for t in out)
        self._add_test_rows(batch, preds, scores)

    def on_test_epoch_end(self) -> None:
        if self._updated["test"]:
            self.test_confmat = self._log_stage("test")

    def predict_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        if "animal" not in batch:  # frames of a video outside any datamodule (mouseemo predict --ckpt)
            return self(batch["image"])
        return self._scores(self.batch_features(batch)[1], batch_groups(batch))[0]

    def configure_optimizers(self) -> None:
        return None  # nothing to optimise: fitting is one pass over the features


def batch_groups(batch: dict) -> list[str]:
    return [f"{a}/{s}" for a, s in zip(batch["animal"], batch["session"])]
