"""The lab's later HOG classifier as a LightningModule: a random forest on PCA of HOG.

:class:`HogRFLitModule` computes HOG on the device during one pass over the training frames
(:class:`~mouseemo.models.hog_features.HogFeatureModule`) and fits scikit-learn's PCA and random forest
on the CPU at its end. By default it sees HOG minus each session's own neutral (``neutral=subtract``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mouseemo.constants import EMOTIONS
from mouseemo.errors import ConfigError, DataError
from mouseemo.models import forest_state
from mouseemo.models.hog_features import HogFeatureModule


class HogRFLitModule(HogFeatureModule):
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
    neutral_modes = ("training", "subtract", "trial")

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
        neutral_source: str = "baseline",
        reference: str | None = None,
    ) -> None:
        super().__init__(
            hog=hog, classes=classes, neutral=neutral, resolution=resolution, neutral_frames=neutral_frames,
            neutral_source=neutral_source, reference=reference,
        )  # fmt: skip
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
