"""The original method as a LightningModule: HOG prototypes, no gradients.

:class:`HogProtoLitModule` reproduces Dolensek et al. (2020): "fitting" is one pass over the training
frames that computes their HOG (on the device, :func:`mouseemo.ops.hog`) and builds the prototypes
(neutral + every emotion present) at the end of the pass, through the same function as
``mouseemo prototypes`` (:func:`mouseemo.models.components.prototypes.fit_prototypes`). Validation and
test frames are labelled by their most similar prototype (Pearson correlation). The shared machinery
(the training pass, resolutions, each session's own neutral and the ``neutral`` options) is
:class:`~mouseemo.models.hog_features.HogFeatureModule`; measured comparisons are in
``docs/results.md``.

The lab's random forest on HOG, :class:`~mouseemo.models.hog_rf_module.HogRFLitModule`, lives in its
own module; it is importable from here too, the path older checkpoints record.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from mouseemo.constants import EMOTIONS
from mouseemo.errors import ConfigError, DataError
from mouseemo.models.components.prototypes import (
    MODES,
    NEUTRAL,
    POOLING,
    FitUnit,
    PrototypeSet,
    carry_to_neutral,
    classify,
    fit_prototypes,
    label_windows,
)
from mouseemo.models.hog_features import HogFeatureModule
from mouseemo.models.hog_rf_module import HogRFLitModule
from mouseemo.models.prototypes_io import Prototypes, to_ranges
from mouseemo.ops.similarity import pearson_similarity

log = logging.getLogger(__name__)


class HogProtoLitModule(HogFeatureModule):
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
        neutral_source: str = "baseline",
        reference: str | None = None,
    ) -> None:
        super().__init__(
            hog=hog, classes=classes, neutral=neutral, resolution=resolution, neutral_frames=neutral_frames,
            neutral_source=neutral_source, reference=reference,
        )  # fmt: skip
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
        """Prototypes from the training frames (:func:`~mouseemo.models.components.prototypes.fit_prototypes`).

        ``neutral=own``: one unit per training session, built against its own neutral (the HOG of its
        baseline frames, or its reference); their changes (prototype - neutral) are averaged per
        animal (``pool="groups"``) or over all sessions (``pool="frames"``), then over animals, and
        added to the mean training neutral. Scoring a session carries the changes to *its* neutral
        (:meth:`session_prototypes`). Otherwise one unit per animal (``pool="groups"``) or one for
        all frames, its neutral the mean of its ``neutral`` frames.
        """
        feats, labels, groups = data["features"], data["label"], data["group"]
        hp = self.hparams
        own = self.neutral_mode == "own"
        if own:
            names = sorted(set(groups.tolist()))
            masks = [groups == g for g in names]
            pool_groups = [g.split("/")[0] if hp.pool == "groups" else g for g in names]
        elif hp.pool == "groups":
            names = sorted(set(data["animal"].tolist()))
            masks = [data["animal"] == a for a in names]
            pool_groups = names
        else:
            names, masks, pool_groups = ["all"], [np.ones(len(labels), dtype=bool)], ["all"]
        neutral_idx = self.classes.index(NEUTRAL)
        units, rows = [], []
        for name, mask, group in zip(names, masks, pool_groups):
            idx = np.flatnonzero(mask)
            windows = label_windows(labels[idx], self.classes, data["t_cam"][idx], groups[idx], hp.max_gap_s)
            windows = {n: w for n, w in windows.items() if n != NEUTRAL}
            source = f"the training frames of {name}"
            if own:
                units.append(FitUnit(source, feats[idx], windows, neutral=self.neutrals[name], group=group))
            else:
                baseline = labels[idx] == neutral_idx
                if not baseline.any():
                    raise DataError(
                        f"no neutral training frames for {'animal ' + name if name != 'all' else 'any animal'}: "
                        "the neutral prototype needs baseline frames (with events labels, set "
                        "data.outside=neutral or add 'neutral' events)"
                    )
                units.append(FitUnit(source, feats[idx], windows, baseline=baseline, group=group))
            rows.append(idx)
        pooled, sets = fit_prototypes(
            units, mode=hp.mode, k=hp.k, drop_first_trial=hp.drop_first_trial, relative=own
        )
        dm = getattr(self._trainer, "datamodule", None)
        # name provenance by video path (as `mouseemo prototypes` does) when the sessions are known
        videos = {s.name: str(s.session.video) for s in getattr(dm, "sessions", None) or []}
        frames_meta: dict[str, dict] = {}
        for idx, pset in zip(rows, sets):
            for name, used in pset.frames.items():
                g, f = groups[idx][used], data["frame"][idx][used]
                for src in np.unique(g):
                    frames_meta.setdefault(name, {})[videos.get(src, str(src))] = to_ranges(f[g == src])
        self._set_fitted(pooled, data, list(dict.fromkeys(pool_groups)), frames_meta)

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
            crop=dm.frames_crop() if hasattr(dm, "frames_crop") else None,
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
        matrix = torch.as_tensor(self.protos.matrix, device=protos.device)
        return carry_to_neutral(matrix, self.prototype_names, self.neutral_of([group])[0]).to(protos.dtype)

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


__all__ = ["HogProtoLitModule", "HogRFLitModule"]
