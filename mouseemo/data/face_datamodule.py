"""LightningDataModule of single face frames with emotion labels.

Frames are decoded once into a uint8 memmap cache per session (cropped and resized), then read at
random. Labels come from ``truth/frames.csv`` (synthetic sessions) or from ``events.csv`` windows.
Splits hold out whole animals or contiguous time blocks (:mod:`mouseemo.data.splits`) and are saved
as ``splits.json`` in the run directory.

Batches are dicts: ``image`` ``(B,1,H,W)`` uint8 (modules convert to float on the device), ``label``
``(B,)`` int64, ``t_cam`` ``(B,)`` float, ``frame`` ``(B,)`` int64, ``animal`` and ``session`` lists
of names. With ``clip_length`` T > 1 the frames come as clips ``frames`` ``(B,T,1,H,W)`` ending at
the labelled frame (``frame``, ``t_cam`` and ``label`` are the last frame's); clips never reach
across a session or a split boundary (earlier frames repeat the first frame of the segment).
With ``reference="median"`` every item also carries its session's ``reference`` ``(1,H,W)`` uint8:
the pixel-wise median of frames spread over the whole session (:func:`session_reference`). With
``reference="trial"`` the ``reference`` is the median face of the item's own trial before its
stimulus (the session's ``trials.csv``, :mod:`mouseemo.data.trials`).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, WeightedRandomSampler

from mouseemo.constants import EMOTIONS
from mouseemo.data.crop import parse_crop
from mouseemo.data.events import IGNORE_INDEX, read_events
from mouseemo.data.frame_dataset import FrameDataset, SessionFrames, segment_starts
from mouseemo.data.label_controls import control_kind, permute_trial_labels, shift_labels
from mouseemo.data.session import Session, discover_sessions, read_truth_frames, resolve_crop, session_times
from mouseemo.data.splits import STAGES, SplitSpec, save_splits, split_animals, time_block_masks
from mouseemo.data.synthetic import generate_dataset
from mouseemo.data.trials import session_trials, trial_references
from mouseemo.data.video import FrameCache, session_reference
from mouseemo.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def ensure_dataset(root: str | Path, synthesize: dict | None) -> list[Session]:
    """Sessions under ``root``; when there are none and ``synthesize`` is given, generate them first."""
    root = Path(root)
    try:
        sessions = discover_sessions(root)
    except DataError:
        if not synthesize:
            raise
    else:
        if synthesize:
            _warn_if_other_synth_params(sessions, synthesize, root)
        return sessions

    log.info("no sessions under %s: generating a synthetic dataset %s", root, dict(synthesize))
    kwargs = dict(synthesize)
    if "size" in kwargs and kwargs["size"] is not None:
        kwargs["size"] = tuple(int(v) for v in kwargs["size"])
    generate_dataset(root, **kwargs)
    return discover_sessions(root)


def _warn_if_other_synth_params(sessions: list[Session], synthesize: dict, root: Path) -> None:
    """Existing synthetic data is reused as is; say so when it was made with other parameters."""
    params = sessions[0].meta.get("params") or {}
    if not sessions[0].meta.get("synthetic"):
        return
    differ = {
        k: (params.get(k), v) for k, v in dict(synthesize).items() if k in params and params.get(k) != v
    }
    animals = {s.animal for s in sessions}
    if "num_mice" in synthesize and len(animals) != synthesize["num_mice"]:
        differ["num_mice"] = (len(animals), synthesize["num_mice"])
    if differ:
        warnings.warn(
            f"{root} holds synthetic data made with other parameters (existing, requested): {differ}; "
            "it is used as it is. Delete the folder to regenerate it.",
            stacklevel=2,
        )


def session_labels(session: Session, times: np.ndarray, source: str, outside: str) -> np.ndarray:
    """Per-frame class indices for ``session`` from ``truth`` or ``events`` (``auto``: truth if present)."""
    if source == "auto":
        source = "truth" if session.truth_frames is not None else "events"
    if source == "truth":
        if session.truth_frames is None:
            raise DataError(f"{session.path}: label_source='truth' but truth/frames.csv is missing")
        labels = read_truth_frames(session.truth_frames)["label"]
        if len(labels) != len(times):
            raise DataError(
                f"{session.truth_frames} has {len(labels)} rows but {session.video} has {len(times)} frames"
            )
        return labels
    if source == "events":
        if session.events_path is None:
            raise DataError(f"{session.path}: label_source='events' but events.csv is missing")
        return read_events(session.events_path).frame_labels(times, outside=outside)
    raise ConfigError(f"label_source must be 'truth', 'events' or 'auto'; got {source!r}")


#: Reference kinds (``data.reference`` / ``model.reference``): the session's median face, or the
#: face of each frame's own trial before its stimulus (needs ``trials.csv``).
REFERENCE_KINDS = ("median", "trial")


def check_reference_kind(kind: str | None) -> str | None:
    """``None`` for no reference (also ``"none"``), else a kind from :data:`REFERENCE_KINDS`."""
    if kind is None or str(kind).lower() in ("none", "null", ""):
        return None
    if kind not in REFERENCE_KINDS:
        raise ConfigError(f"reference must be one of {', '.join(REFERENCE_KINDS)} or null; got {kind!r}")
    return str(kind)


class FaceFramesDataModule(pl.LightningDataModule):
    """Face frames with emotion labels, split by animal or by time block.

    Args:
        root: dataset root (``<animal>/<session>/`` folders or a manifest).
        synthesize: keyword arguments of :func:`mouseemo.data.synthetic.generate_dataset`, used when
            ``root`` holds no session yet; ``None`` to require existing data.
        label_source: ``"truth"``, ``"events"`` or ``"auto"``.
        outside: label of frames in no event window with ``label_source="events"`` (``"ignore"`` or a
            class name).
        crop: ``"x,y,w,h"`` (or a preset) applied before resizing; ``None`` uses a crop stored in each
            ``session.json`` (key ``crop``) or the full frame; ``"none"`` the full frame.
        image_size: ``[H, W]`` the frames are resized to (area interpolation), or ``None``.
        split: :class:`SplitSpec` fields.
        train_stride: use every n-th training frame (neighbours are near-duplicates).
        eval_stride: the same for val and test.
        shuffle_train_labels: a label control (:mod:`mouseemo.data.label_controls`): ``shift``
            (``true``) or ``permute`` (trials swap labels; needs ``trials.csv``); ``control_draw``
            numbers independent draws of it.
        clip_length: frames per item; 1 gives single frames (``image``), T > 1 clips (``frames``)
            for temporal models.
        clip_step: frames between the members of a clip (1: consecutive frames).
        reference: ``"median"`` adds each session's reference frame to every item
            (:func:`session_reference`), for models that compare a frame with its session's typical
            face (``model.reference``); ``"trial"`` the median face of the item's own trial before
            its stimulus (``trials.csv``; frames outside every trial get the session's); ``None``
            for none.
        reference_frames: frames the reference is the median of.
        sampler: ``"shuffle"`` (every training frame once per epoch, in random order) or
            ``"balanced"`` (a ``WeightedRandomSampler`` that draws each class equally often, as
            many draws per epoch as there are training frames).
        batch_size, num_workers, pin_memory: loader settings.
        cache_dir: where decoded frames are cached (default ``<root>/.cache``).
        output_dir: where ``splits.json`` is written (the run directory), or ``None``.
        seed: seeds the split choice and the label-shuffle control.
        classes: class names, in index order.
    """

    def __init__(
        self,
        root: str | None,
        synthesize: dict | None = None,
        label_source: str = "auto",
        outside: str = "ignore",
        crop: str | Sequence[int] | None = None,
        image_size: Sequence[int] | None = (96, 128),
        split: dict | None = None,
        train_stride: int = 1,
        eval_stride: int = 1,
        shuffle_train_labels: bool | str = False,
        control_draw: int = 0,
        clip_length: int = 1,
        clip_step: int = 1,
        reference: str | None = None,
        reference_frames: int = 300,
        sampler: str = "shuffle",
        batch_size: int = 64,
        num_workers: int = 0,
        pin_memory: bool = False,
        cache_dir: str | None = None,
        output_dir: str | None = None,
        seed: int = 0,
        classes: Sequence[str] = EMOTIONS,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        if not root:
            raise ConfigError("data.root is not set: pass data.root=/path/to/dataset")
        self.root = Path(root)
        whole = (
            isinstance(crop, str) and crop.strip().lower() == "none"
        )  # the whole frame, whatever session.json says
        self.crop = "none" if whole else (parse_crop(crop) if crop is not None else None)
        self.image_size = tuple(int(v) for v in image_size) if image_size is not None else None
        split = dict(split or {})
        if split.get("seed") is None:  # null: the split follows the run's seed
            split["seed"] = seed
        self.spec = SplitSpec(**split)
        if self.spec.kind not in ("animals", "time"):
            raise ConfigError(f"split.kind must be 'animals' or 'time'; got {self.spec.kind!r}")
        if train_stride < 1 or eval_stride < 1:
            raise ConfigError("train_stride and eval_stride must be >= 1")
        if int(clip_length) < 1 or int(clip_step) < 1:
            raise ConfigError(f"clip_length and clip_step must be >= 1; got {clip_length}, {clip_step}")
        if sampler not in ("shuffle", "balanced"):
            raise ConfigError(f"data.sampler must be 'shuffle' or 'balanced'; got {sampler!r}")
        self.clip_length = int(clip_length)
        self.control = control_kind(shuffle_train_labels)
        self.reference = check_reference_kind(reference)
        if int(reference_frames) < 1:
            raise ConfigError(f"data.reference_frames must be >= 1; got {reference_frames}")
        self.sampler = sampler
        self.classes = tuple(classes)
        self.sessions: list[SessionFrames] = []
        self.masks: dict[str, dict[str, np.ndarray]] = {}
        self.datasets: dict[str, FrameDataset] = {}
        self.class_counts: np.ndarray | None = None
        self._prepared = False

    # -- preparation ------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Generate the synthetic dataset if needed and build the frame caches (once, on rank 0)."""
        for session in ensure_dataset(self.root, self.hparams.synthesize):
            FrameCache.get_or_build(
                session.video, self._cache_dir(), self._crop_for(session), self.image_size
            )

    def _cache_dir(self) -> Path:
        return Path(self.hparams.cache_dir) if self.hparams.cache_dir else self.root / ".cache"

    def session_frames(self, session: Session, size: Sequence[int] | None = None) -> np.ndarray:
        """``(T, H, W)`` uint8 frames of ``session``, cropped as the datamodule crops them and resized
        to ``size`` (``(H, W)``; ``None``: full resolution), as a read-only memmap of a frame cache
        (built on first use, under the datamodule's cache folder).

        ``size=self.image_size`` gives the frames the batches hold; ``None`` the same frames at the
        video's resolution (``model.resolution=native``).
        """
        size = tuple(int(v) for v in size) if size is not None else None
        return FrameCache.get_or_build(session.video, self._cache_dir(), self._crop_for(session), size).frames

    def _crop_for(self, session: Session):
        return resolve_crop(self.crop, None, session.meta)

    def frames_crop(self):
        """The crop every session's frames were read with (``data.crop``, else their session.json's)
        when they share one; ``None`` for whole frames or crops that differ between sessions."""
        crops = {self._crop_for(s.session) for s in self.sessions}
        return next(iter(crops)) if len(crops) == 1 else None

    def setup(self, stage: str | None = None) -> None:
        if self._prepared:
            return
        self.sessions = []
        for session in discover_sessions(self.root):
            cache = FrameCache.get_or_build(
                session.video, self._cache_dir(), self._crop_for(session), self.image_size
            )
            times = session_times(session, len(cache))  # frames counted when the cache was built
            labels = self._to_class_index(
                session_labels(session, times, self.hparams.label_source, self.hparams.outside), session
            )
            reference, reference_index = None, None
            if self.reference == "median":
                reference = session_reference(
                    np.load(cache.path, mmap_mode="r"), self.hparams.reference_frames
                )[None]
            elif self.reference == "trial":
                reference, reference_index = trial_references(
                    np.load(cache.path, mmap_mode="r"),
                    times,
                    session_trials(session.path, "data.reference=trial"),
                )
            self.sessions.append(
                SessionFrames(session, cache.path, labels, times, reference, reference_index)
            )
        self.masks = self._split_masks()
        self._build_datasets()
        self._prepared = True

    def _to_class_index(self, labels: np.ndarray, session: Session) -> np.ndarray:
        """Vocabulary indices (:data:`EMOTIONS` order) -> indices into ``classes``, by name, so
        that e.g. ``classes=[neutral, pain]`` works; a label missing from ``classes`` is an error."""
        lut = np.array([self.classes.index(n) if n in self.classes else -2 for n in EMOTIONS], dtype=np.int64)
        keep = labels != IGNORE_INDEX
        bad = keep & ((labels < 0) | (labels >= len(lut)))
        if not bad.any():
            out = labels.copy()
            out[keep] = lut[labels[keep]]
            bad = out == -2
            if not bad.any():
                return out
            names = sorted({EMOTIONS[i] for i in labels[bad]})
            raise DataError(f"{session.path}: label(s) {names} are not in data.classes {list(self.classes)}")
        raise DataError(f"{session.path}: labels outside the {len(self.classes)} classes")

    def _split_masks(self) -> dict[str, dict[str, np.ndarray]]:
        masks: dict[str, dict[str, np.ndarray]] = {}
        if self.spec.kind == "animals":
            groups = split_animals([s.session.animal for s in self.sessions], self.spec)
            self.animal_groups = groups
            for s in self.sessions:
                n = len(s.labels)
                masks[s.name] = {stage: np.full(n, s.session.animal in groups[stage]) for stage in STAGES}
        else:
            self.animal_groups = None
            for k, s in enumerate(self.sessions):
                masks[s.name] = time_block_masks(s.times, self.spec, salt=k)
        return masks

    def _build_datasets(self) -> None:
        rng = np.random.default_rng([int(self.hparams.seed) + 1, int(self.hparams.control_draw)])
        for stage in STAGES:
            idx, labs, starts = [], [], []
            stride = self.hparams.train_stride if stage == "train" else self.hparams.eval_stride
            for k, s in enumerate(self.sessions):
                labels = s.labels
                if stage == "train" and self.control == "shift":
                    labels = shift_labels(labels, rng)
                elif stage == "train" and self.control == "permute":
                    labels = permute_trial_labels(
                        labels,
                        s.times,
                        session_trials(s.session.path, "data.shuffle_train_labels=permute"),
                        rng,
                    )[0]
                sel = np.flatnonzero(self.masks[s.name][stage] & (labels != IGNORE_INDEX))[::stride]
                idx.append(np.stack([np.full(len(sel), k), sel], axis=1))
                labs.append(labels[sel])
                starts.append(segment_starts(self.masks[s.name][stage])[sel])
            index = np.concatenate(idx) if idx else np.zeros((0, 2), dtype=np.int64)
            labels = np.concatenate(labs) if labs else np.zeros(0, dtype=np.int64)
            self.datasets[stage] = FrameDataset(
                self.sessions,
                index.astype(np.int64),
                labels.astype(np.int64),
                clip_length=self.clip_length,
                clip_step=self.hparams.clip_step,
                starts=np.concatenate(starts).astype(np.int64) if starts else None,
            )
        self.class_counts = np.bincount(self.datasets["train"].labels, minlength=len(self.classes))
        if len(self.datasets["train"]) == 0:
            raise DataError(f"the training split of {self.root} is empty")
        for stage in ("val", "test"):
            present = np.bincount(self.datasets[stage].labels, minlength=len(self.classes))
            missing = [c for c, n in zip(self.classes, present) if n == 0]
            if len(self.datasets[stage]) and missing:
                warnings.warn(
                    f"{stage} split has no frames of class(es) {missing}; their per-class scores are undefined",
                    stacklevel=2,
                )
        if self.hparams.output_dir:
            extra = {
                "root": str(self.root),
                "animals": getattr(self, "animal_groups", None),
                "label_source": self.hparams.label_source,
            }
            save_splits(Path(self.hparams.output_dir) / "splits.json", self.masks, self.spec, extra)

    @property
    def class_weights(self) -> torch.Tensor:
        """Inverse-frequency weights of the training classes (mean 1 over present classes)."""
        counts = torch.as_tensor(self.class_counts, dtype=torch.float32)
        w = torch.where(counts > 0, counts.sum() / counts.clamp(min=1), torch.zeros_like(counts))
        present = counts > 0
        return w / w[present].mean()

    # -- loaders ----------------------------------------------------------------------------------
    def _loader(self, stage: str, shuffle: bool) -> DataLoader:
        sampler = None
        if stage == "train" and self.sampler == "balanced":
            labels = self.datasets[stage].labels
            weights = 1.0 / np.bincount(labels, minlength=len(self.classes))[labels]
            generator = torch.Generator().manual_seed(int(self.hparams.seed))
            sampler = WeightedRandomSampler(
                weights.tolist(), len(labels), replacement=True, generator=generator
            )
            shuffle = False
        return DataLoader(
            self.datasets[stage],
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            sampler=sampler,
            num_workers=self.hparams.num_workers,
            pin_memory=self.hparams.pin_memory,
            persistent_workers=self.hparams.num_workers > 0,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
