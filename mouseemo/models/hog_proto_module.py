"""The original method as LightningModules: HOG features, no gradients.

:class:`HogProtoLitModule` reproduces Dolensek et al. (2020): "fitting" is one pass over the training
frames that computes their HOG (on the device, :func:`mouseemo.ops.hog`) and builds the prototypes
(neutral + every emotion present) at the end of the pass. Validation and test frames are labelled by
their most similar prototype (Pearson correlation), and scored with the same
:class:`~mouseemo.models.metrics.StageMetrics` as the CNN classifiers, so numbers are comparable.

:class:`HogRFLitModule` is the lab's later classifier: a random forest on PCA of HOG (scikit-image /
scikit-learn on the CPU), fitted at the end of the same pass.

Both read the datamodules' batches unchanged (``image`` uint8 ``(B,1,H,W)``, ``label``, ``t_cam``,
``frame``, ``animal``, ``session``). With ``resolution="data"`` HOG sees the frames as the datamodule
delivers them, i.e. resized to ``data.image_size``: choose ``pixels_per_cell`` for that size (12 px at
72 x 96 and 16 px at 96 x 128 both give 6 x 8 cells). With ``resolution="native"`` the module reads the
same frames (same crop, same indices) from a full-resolution frame cache of its own, so the paper's
32-px cells see full 240 x 320 crops while the networks keep their small frames
(``conf/model/hog_proto_paper.yaml``).

**Each session's own neutral.** The paper reads a new animal's expressions as changes from *its own*
neutral face. Every session's neutral is the mean HOG of its frames before the first stimulus
(``events.csv``; up to ``neutral_frames`` of them, evenly spread), or, when it has none, the HOG of its
reference (median) frame, with a warning naming the session
(:mod:`mouseemo.models.session_neutral`). ``neutral`` chooses how it is used:

* ``"own"`` (``hog_proto``'s default): per training session, emotion prototypes are built against that
  session's neutral and kept as changes (prototype - neutral); changes are averaged per animal, then
  over animals. A test frame is compared (Pearson) with *its session's* neutral and with that neutral
  plus each change.
* ``"subtract"`` (``hog_rf``'s default): features are HOG minus the session's neutral, for fitting and
  for scoring (per-session normalisation).
* ``"training"``: the training animals' pooled neutral and prototypes for every animal (what
  ``hog_proto`` did before; not how the paper treats a new animal).

The choice was measured on the development cohort only (``experiment=benchmark_dev``: 6 animals x
1 min, strong nuisance, synthetic seed 101), leave-one-animal-out over all 6 folds, test macro-F1 as
mean ± sample sd over folds (2 CPU cores); each column is
``python evaluate.py experiment=benchmark_dev benchmark.models=[hog_proto,hog_proto_paper,hog_rf]
benchmark.shuffle_control=false +benchmark.model_overrides.<model>.neutral=<choice>``::

    labels  model            neutral=training  neutral=own     neutral=subtract
    truth   hog_proto        0.392 ± 0.188     0.417 ± 0.212   0.314 ± 0.095
    truth   hog_proto_paper  0.117 ± 0.048     0.229 ± 0.103   0.171 ± 0.067
    truth   hog_rf           0.324 ± 0.133     (n/a)           0.370 ± 0.195
    events  hog_proto        0.295 ± 0.147     0.341 ± 0.166   0.211 ± 0.067
    events  hog_proto_paper  0.130 ± 0.058     0.180 ± 0.066   0.164 ± 0.062
    events  hog_rf           0.260 ± 0.100     (n/a)           0.267 ± 0.119

``own`` is the best prototype variant at both cell sizes and with both label sources. Per fold it
beat ``training`` in 5 of 6 folds with 12-px cells and in 5 of 6 with 32-px cells, with either label
source. ``subtract`` loses for prototypes: the neutral
prototype of normalised features is close to zero, so correlations with it are mostly noise. For the
forest, ``subtract`` is ahead in 4 of 6 folds with truth labels and even with events labels.
The spread over animals is large (sd ~0.2), so with 6 animals the gain of ``own`` at 12-px cells
lies within it; at 32-px cells it does not.

The pass stops training after one epoch (``trainer.should_stop``), whatever ``trainer.max_epochs``
says: more epochs would only recompute the same features.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from mouseemo.constants import EMOTIONS
from mouseemo.data.events import IGNORE_INDEX
from mouseemo.data.video import FrameCache, session_reference
from mouseemo.errors import ConfigError, DataError
from mouseemo.models import forest_state
from mouseemo.models.components.prototypes import (
    MODES,
    NEUTRAL,
    POOLING,
    PrototypeSet,
    build_prototypes,
    classify,
    label_windows,
    pool_prototypes,
)
from mouseemo.models.metrics import StageMetrics
from mouseemo.models.outputs import EvalOutputsMixin
from mouseemo.models.prototypes_io import Prototypes, hog_params, to_ranges
from mouseemo.models.session_neutral import neutral_frames
from mouseemo.ops import hog
from mouseemo.ops.similarity import pearson_similarity

log = logging.getLogger(__name__)

#: ``model.resolution``: ``data`` frames as the datamodule delivers them (resized to
#: ``data.image_size``), or ``native`` full-resolution crops from a frame cache of their own.
RESOLUTIONS: tuple[str, ...] = ("data", "native")


class _HogFeatureModule(EvalOutputsMixin, pl.LightningModule):
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
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.hog_kwargs = hog_params(**dict(hog or {}))
        if neutral not in self.neutral_modes:
            raise ConfigError(f"model.neutral must be one of {list(self.neutral_modes)}; got {neutral!r}")
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
            cache = FrameCache.get_or_build(sf.session.video, dm._cache_dir(), dm._crop_for(sf.session), None)
            self._native[sf.name] = cache.frames
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
        """HOG of every session's own neutral: the mean over its pre-stimulus frames, or the HOG of
        its reference (median) frame, with a warning, when it has none."""
        if self.neutral_mode == "training":
            return
        dm = self._datamodule(f"neutral={self.neutral_mode}")
        for sf in dm.sessions:
            if sf.name in self.neutrals:
                continue
            frames = self._session_frames(dm, sf)
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

    def training_step(self, batch: dict, batch_idx: int) -> None:
        images = self.images(batch)
        feats = self.features(images)
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
        return self._scores(self.features(images), groups)[0]

    def _eval_step(self, stage: str, batch: dict) -> tuple[torch.Tensor, torch.Tensor] | None:
        if not self.is_fitted:
            if self._trainer is not None and self._trainer.sanity_checking:
                return None
            raise ConfigError(
                f"{type(self).__name__} has not been fitted: train it first or pass ckpt_path=... "
                "of a fitted checkpoint"
            )
        images = self.images(batch)
        self._check_frame_size(tuple(int(v) for v in images.shape[-2:]))
        scores, preds = self._scores(self.features(images), _groups(batch))
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
        for i in range(len(preds)):
            self.test_rows.append(
                (
                    batch["animal"][i],
                    batch["session"][i],
                    int(batch["frame"][i]),
                    float(batch["t_cam"][i]),
                    int(batch["label"][i]),
                    int(preds[i]),
                    *scores[i].tolist(),
                )
            )

    def on_test_epoch_end(self) -> None:
        if self._updated["test"]:
            self.test_confmat = self._log_stage("test")

    def predict_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        if "animal" not in batch:  # frames of a video outside any datamodule (mouseemo predict --ckpt)
            return self(batch["image"])
        return self(self.images(batch), _groups(batch))

    def configure_optimizers(self) -> None:
        return None  # nothing to optimise: fitting is one pass over the features


def _groups(batch: dict) -> list[str]:
    return [f"{a}/{s}" for a, s in zip(batch["animal"], batch["session"])]


class HogProtoLitModule(_HogFeatureModule):
    """Prototypical expressions on HOG features (Dolensek et al. 2020), as a LightningModule.

    Args:
        hog: HOG parameters (scikit-image names): ``orientations``, ``pixels_per_cell``,
            ``cells_per_block``, ``block_norm``, ``transform_sqrt``.
        mode: ``"least-neutral"`` (mean HOG of the ``k`` frames least correlated with neutral inside
            each label's frames) or ``"window-mean"`` (mean over each contiguous run of the label, then
            over runs).
        k: frames per emotion prototype in ``least-neutral`` mode.
        drop_first_trial: leave each label's first run (trial) out, per pooling unit (the first
            trial of each animal with ``pool="groups"``, the first of all frames with ``"frames"``).
        pool: ``"groups"``: build prototypes per animal and average them (each animal counts once);
            ``"frames"``: pool all training frames, then build once.
        margin: frames whose best similarity beats neutral by less than this are labelled neutral.
        max_gap_s: a gap longer than this between consecutive frames of a label starts a new run.
        prototypes_path: where to write ``prototypes.npz`` after fitting (``None``: the trainer's
            ``default_root_dir``).
        classes: class names in index order; ``neutral`` must be one of them.

    Per-frame labels define the windows: with the datamodule's labels, "inside that label's windows"
    means "frames with that label", and the neutral prototype is the mean of ``neutral`` frames.
    The prototypes travel in checkpoints (``on_save_checkpoint``) and as ``prototypes.npz``.
    """

    score_prefix = "similarity"
    neutral_modes = ("training", "own", "subtract")

    def __init__(
        self,
        hog: dict | None = None,
        mode: str = "least-neutral",
        k: int = 10,
        drop_first_trial: bool = False,
        pool: str = "groups",
        margin: float = 0.0,
        max_gap_s: float = 1.0,
        prototypes_path: str | None = None,
        classes: Sequence[str] = EMOTIONS,
        neutral: str = "own",
        resolution: str = "data",
        neutral_frames: int = 300,
    ) -> None:
        super().__init__(
            hog=hog, classes=classes, neutral=neutral, resolution=resolution, neutral_frames=neutral_frames
        )
        self.save_hyperparameters(logger=False)
        if mode not in MODES:
            raise ConfigError(f"model.mode must be one of {list(MODES)}; got {mode!r}")
        if pool not in POOLING:
            raise ConfigError(f"model.pool must be one of {list(POOLING)}; got {pool!r}")
        if k < 1:
            raise ConfigError(f"model.k must be >= 1; got {k}")
        if margin < 0:
            raise ConfigError(f"model.margin must be >= 0; got {margin}")
        if NEUTRAL not in self.classes:
            raise ConfigError(f"classes must include {NEUTRAL!r}; got {self.classes}")
        # Non-persistent buffers follow the module across devices; the prototypes themselves are
        # saved by on_save_checkpoint, because their shape is only known after fitting.
        self.register_buffer("prototypes", torch.zeros(0, 0), persistent=False)
        self.register_buffer("prototype_classes", torch.zeros(0, dtype=torch.long), persistent=False)
        self.protos: Prototypes | None = None

    @property
    def is_fitted(self) -> bool:
        return self.protos is not None

    @property
    def prototype_names(self) -> list[str]:
        return list(self.protos.names) if self.protos is not None else []

    def score_names(self) -> list[str]:
        return self.prototype_names

    def set_prototypes(self, protos: Prototypes) -> None:
        """Use ``protos`` (e.g. loaded from a ``prototypes.npz``); their names must be classes."""
        unknown = [n for n in protos.names if n not in self.classes]
        if unknown:
            raise ConfigError(f"prototype name(s) {unknown} are not among the classes {self.classes}")
        protos.check_compatible(self.hog_kwargs)
        self.protos = protos
        device = self.prototypes.device
        self.prototypes = torch.as_tensor(protos.matrix, dtype=torch.float32, device=device)
        self.prototype_classes = torch.tensor(
            [self.classes.index(n) for n in protos.names], dtype=torch.long, device=device
        )
        self.frame_size = protos.frame_size

    def _fit(self, data: dict[str, np.ndarray]) -> None:
        if self.neutral_mode == "own":
            return self._fit_own(data)
        feats, labels = data["features"], data["label"]
        neutral_idx = self.classes.index(NEUTRAL)
        hp = self.hparams
        if hp.pool == "groups":
            units = sorted(set(data["animal"].tolist()))
            masks = [data["animal"] == a for a in units]
        else:
            units, masks = ["all"], [np.ones(len(labels), dtype=bool)]
        dm = getattr(self._trainer, "datamodule", None)
        # name provenance by video path (as `mouseemo prototypes` does) when the sessions are known
        videos = {s.name: str(s.session.video) for s in getattr(dm, "sessions", None) or []}
        sets, frames_meta = [], {}
        for unit, m in zip(units, masks):
            idx = np.flatnonzero(m)
            baseline = labels[idx] == neutral_idx
            if not baseline.any():
                raise DataError(
                    f"no neutral training frames for {'animal ' + unit if unit != 'all' else 'any animal'}: "
                    "the neutral prototype needs baseline frames (with events labels, set data.outside=neutral "
                    "or add 'neutral' events)"
                )
            windows = label_windows(
                labels[idx], self.classes, data["t_cam"][idx], data["group"][idx], hp.max_gap_s
            )
            windows = {n: w for n, w in windows.items() if n != NEUTRAL}
            pset = build_prototypes(
                feats[idx],
                windows,
                baseline=baseline,
                mode=hp.mode,
                k=hp.k,
                drop_first_trial=hp.drop_first_trial,
                source=f"the training frames of {unit}",
            )
            sets.append(pset)
            for name, used in pset.frames.items():
                g, f = data["group"][idx][used], data["frame"][idx][used]
                for src in np.unique(g):
                    frames_meta.setdefault(name, {})[videos.get(src, str(src))] = to_ranges(f[g == src])
        pooled = pool_prototypes(sets) if len(sets) > 1 else sets[0]
        self._set_fitted(pooled, data, units, frames_meta)

    def _fit_own(self, data: dict[str, np.ndarray]) -> None:
        """Prototypes as changes from each training session's own neutral, carried to any session.

        Per training session: its neutral is the HOG of its pre-stimulus frames (or reference), its
        emotion prototypes are built against that neutral, and their changes (prototype - neutral) are
        kept. Changes are averaged per animal, then over animals (``pool="groups"``), or over all
        sessions (``pool="frames"``). The stored matrix is the mean training neutral plus the mean
        changes; scoring a session adds the changes to *its* neutral instead.
        """
        feats, labels, groups = data["features"], data["label"], data["group"]
        hp = self.hparams
        dm = getattr(self._trainer, "datamodule", None)
        videos = {s.name: str(s.session.video) for s in getattr(dm, "sessions", None) or []}
        per_unit: dict[str, list[PrototypeSet]] = {}
        neutrals: dict[str, list[np.ndarray]] = {}
        frames_meta: dict[str, dict] = {}
        for g in sorted(set(groups.tolist())):
            idx = np.flatnonzero(groups == g)
            animal = g.split("/")[0]
            unit = animal if hp.pool == "groups" else g
            neutral = self.neutrals[g]
            neutrals.setdefault(unit, []).append(neutral)
            windows = label_windows(labels[idx], self.classes, data["t_cam"][idx], groups[idx], hp.max_gap_s)
            windows = {n: w for n, w in windows.items() if n != NEUTRAL}
            pset = build_prototypes(
                feats[idx], windows, neutral=neutral, mode=hp.mode, k=hp.k,
                drop_first_trial=hp.drop_first_trial, source=f"the training frames of {g}",
            )  # fmt: skip
            change = PrototypeSet(pset.names, pset.matrix - neutral[None], pset.frames)
            per_unit.setdefault(unit, []).append(change)
            for name, used in pset.frames.items():
                if len(used):
                    frames_meta.setdefault(name, {})[videos.get(g, g)] = to_ranges(data["frame"][idx][used])
        units = sorted(per_unit)
        changes = pool_prototypes([pool_prototypes(per_unit[u]) for u in units])
        base = np.mean([np.mean(neutrals[u], axis=0) for u in units], axis=0)
        pooled = PrototypeSet(changes.names, changes.matrix + base[None], {})
        self._set_fitted(pooled, data, units, frames_meta)

    def _set_fitted(self, pooled: PrototypeSet, data: dict, units: list[str], frames_meta: dict) -> None:
        hp = self.hparams
        dm = getattr(self._trainer, "datamodule", None)
        videos = {s.name: str(s.session.video) for s in getattr(dm, "sessions", None) or []}
        labels = data["label"]
        order = sorted(range(len(pooled.names)), key=lambda i: self.classes.index(pooled.names[i]))
        protos = Prototypes(
            matrix=pooled.matrix[order],
            names=[pooled.names[i] for i in order],
            hog=self.hog_kwargs,
            frame_size=self.frame_size,
            crop=getattr(dm, "crop", None),
            resize=None if self.resolution == "native" else getattr(dm, "image_size", None),
            mode=hp.mode,
            k=hp.k,
            drop_first_trial=hp.drop_first_trial,
            pool=hp.pool,
            sources=[videos.get(g, g) for g in sorted(set(data["group"].tolist()))],
            frames=frames_meta,
            extra={
                "built_by": type(self).__name__,
                "num_training_frames": len(labels),
                "units": units,
                "neutral": self.neutral_mode,
                "resolution": self.resolution,
            },
        )
        self.set_prototypes(protos)
        missing = [c for c in self.classes if c not in protos.names]
        if missing:
            log.warning("no training frames of %s: those classes can never be predicted", missing)
        self._write_prototypes()

    def _write_prototypes(self) -> None:
        if self.protos is None or (self._trainer is not None and not self.trainer.is_global_zero):
            return
        path = self.hparams.prototypes_path
        if not path and self._trainer is not None:
            path = Path(self.trainer.default_root_dir) / "prototypes.npz"
        if path:
            self.protos.save(path)
            log.info("prototypes written to %s", path)

    def _check_frame_size(self, size: tuple[int, int]) -> None:
        self.protos.check_compatible(self.hog_kwargs, size, source="the evaluation frames")

    def similarity(self, feats: torch.Tensor) -> torch.Tensor:
        """Pearson similarity of ``(B, D)`` features to each prototype: ``(B, K')``."""
        return pearson_similarity(feats, self.prototypes.to(feats.device))

    def session_prototypes(self, group: str) -> torch.Tensor:
        """``(K', D)`` prototypes a frame of session ``group`` is compared with: with ``neutral=own``
        its own neutral and that neutral plus each emotion's change; else the fitted prototypes."""
        protos = self.prototypes
        if self.neutral_mode != "own":
            return protos
        names = self.prototype_names
        n = names.index(NEUTRAL)
        own = torch.as_tensor(self.neutral_of([group])[0], dtype=protos.dtype, device=protos.device)
        return protos - protos[n : n + 1] + own[None]

    def _scores(
        self, feats: torch.Tensor, groups: Sequence[str] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self._normalised(feats, groups)
        if self.neutral_mode == "own" and groups is not None:
            sim = torch.empty(len(feats), len(self.prototype_names), dtype=feats.dtype, device=feats.device)
            names = np.asarray(list(groups))
            for g in np.unique(names):
                rows = torch.as_tensor(np.flatnonzero(names == g), device=feats.device)
                sim[rows] = pearson_similarity(feats[rows], self.session_prototypes(str(g)).to(feats.device))
        else:
            # neutral=own without sessions: the training animals' mean neutral stands in
            sim = self.similarity(feats)
        idx = classify(sim, self.prototype_names, margin=self.hparams.margin)
        return sim, self.prototype_classes.to(idx.device)[idx]

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.protos is not None:
            checkpoint["hog_prototypes"] = self.protos.dumps()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        data = checkpoint.get("hog_prototypes")
        if data is not None:
            self.set_prototypes(Prototypes.loads(data))


class HogRFLitModule(_HogFeatureModule):
    """Random forest on PCA of HOG features (the lab's later classifier), as a LightningModule.

    Args:
        hog: HOG parameters, as for :class:`HogProtoLitModule`.
        num_components: PCA components (capped by the number of training frames and features).
        num_trees: trees in the forest.
        max_depth: tree depth limit (``None``: grow until pure).
        min_samples_leaf: minimum frames per leaf.
        class_weight: ``"balanced"`` (inverse class frequency; neutral dominates a session) or ``None``.
        num_jobs: scikit-learn worker threads (``-1``: all cores).
        seed: random state of PCA and the forest.
        classes: class names in index order.
    """

    score_prefix = "prob"

    def __init__(
        self,
        hog: dict | None = None,
        num_components: int = 50,
        num_trees: int = 200,
        max_depth: int | None = None,
        min_samples_leaf: int = 1,
        class_weight: str | None = "balanced",
        num_jobs: int = -1,
        seed: int = 0,
        classes: Sequence[str] = EMOTIONS,
        neutral: str = "subtract",
        resolution: str = "data",
        neutral_frames: int = 300,
    ) -> None:
        super().__init__(
            hog=hog, classes=classes, neutral=neutral, resolution=resolution, neutral_frames=neutral_frames
        )
        self.save_hyperparameters(logger=False)
        if num_components < 1 or num_trees < 1:
            raise ConfigError("model.num_components and model.num_trees must be >= 1")
        self.pipeline = None  # sklearn Pipeline(PCA, RandomForestClassifier) once fitted

    @property
    def is_fitted(self) -> bool:
        return self.pipeline is not None

    def score_names(self) -> list[str]:
        return list(self.classes)

    def _fit(self, data: dict[str, np.ndarray]) -> None:
        from sklearn.decomposition import PCA
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.pipeline import Pipeline

        x, y = data["features"].astype(np.float32), data["label"]
        if len(np.unique(y)) < 2:
            raise DataError(
                f"the training frames hold a single class ({self.classes[int(y[0])]}); need two or more"
            )
        hp = self.hparams
        ncomp = int(min(hp.num_components, x.shape[0] - 1, x.shape[1]))
        self.pipeline = Pipeline(
            [
                ("pca", PCA(n_components=max(ncomp, 1), random_state=hp.seed)),
                (
                    "rf",
                    RandomForestClassifier(
                        n_estimators=hp.num_trees,
                        max_depth=hp.max_depth,
                        min_samples_leaf=hp.min_samples_leaf,
                        class_weight=hp.class_weight,
                        n_jobs=hp.num_jobs,
                        random_state=hp.seed,
                    ),
                ),
            ]
        ).fit(x, y)

    def _check_frame_size(self, size: tuple[int, int]) -> None:
        if self.frame_size is not None and tuple(size) != tuple(self.frame_size):
            raise ConfigError(
                f"the forest was fitted on {self.frame_size[1]}x{self.frame_size[0]} (w x h) frames, "
                f"got {size[1]}x{size[0]}: use the same data.image_size"
            )

    def _scores(
        self, feats: torch.Tensor, groups: Sequence[str] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self._normalised(feats, groups)
        proba = self.pipeline.predict_proba(feats.detach().cpu().numpy().astype(np.float32))
        full = np.zeros((len(proba), len(self.classes)), dtype=np.float32)
        full[:, self.pipeline.classes_.astype(np.int64)] = proba
        probs = torch.from_numpy(full).to(feats.device)
        return probs, probs.argmax(dim=1)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # the fitted pipeline as arrays and numbers (no pickle): see mouseemo.models.forest_state
        if self.pipeline is not None:
            checkpoint["hog_rf"] = {
                "format": forest_state.FORMAT,
                "pipeline": forest_state.to_plain(self.pipeline),
                "frame_size": list(self.frame_size) if self.frame_size else None,
            }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("hog_rf")
        if state is None:
            return
        trainer = self._trainer
        source = str(getattr(trainer, "ckpt_path", None) or "the hog_rf checkpoint")
        if not isinstance(state, dict) or state.get("format") != forest_state.FORMAT:
            raise DataError(
                f"{source}: this hog_rf checkpoint stores its forest as a pickle (older mouseemo versions did), "
                "which mouseemo no longer loads: fit the model again"
            )
        self.pipeline = forest_state.from_plain(state["pipeline"], source=source)
        size = state.get("frame_size")
        self.frame_size = (int(size[0]), int(size[1])) if size else None
