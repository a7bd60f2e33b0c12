"""CNN expression classifier as a LightningModule."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import pytorch_lightning as pl
import torch
from torch import nn

from mouseemo.constants import EMOTIONS
from mouseemo.data.events import IGNORE_INDEX
from mouseemo.data.face_datamodule import check_reference_kind
from mouseemo.errors import ConfigError
from mouseemo.models.components.augment import FaceAugment
from mouseemo.models.metrics import StageMetrics
from mouseemo.models.outputs import EvalOutputsMixin
from mouseemo.ops.frames import standardize_frames, to_unit_float

log = logging.getLogger(__name__)


class ClassifierLitModule(EvalOutputsMixin, pl.LightningModule):
    """Frame-level expression classifier.

    Args:
        net: backbone mapping ``(B, 1, H, W)`` float images to ``(B, K)`` logits.
        optimizer: partial optimizer (``_partial_: true`` in the config).
        scheduler: partial LR scheduler or ``None``.
        augment: train-time augmentation applied on the device, or ``None``.
        class_weighting: ``"balanced"`` weights the loss by inverse class frequency of the training
            split (neutral dominates a session), ``"sqrt"`` by its square root (a milder correction
            that trades some rare-class recall for fewer false alarms), ``"none"`` for plain
            cross-entropy. With the datamodule's balanced sampler (``data.sampler=balanced``) the
            loss stays unweighted, so the imbalance is not corrected twice.
        label_smoothing: cross-entropy label smoothing.
        standardize: give every frame zero mean and unit variance before the network (after
            augmentation), which removes brightness and contrast differences between animals and
            sessions.
        reference: ``"median"``: the network sees two channels, the frame and its difference from
            the session's reference frame (the median face of the session, batch key ``reference``,
            given by the datamodule with ``data.reference=median``). Frame and reference get the
            same augmentation (a different camera placement moves both) and are standardised
            separately before the difference, so the second channel shows what the face does, not
            what the animal or the camera looks like. ``"trial"``: the same with the median face of
            the frame's own trial before its stimulus (``data.reference=trial``, ``trials.csv``).
            ``None``: frames alone.
        reference_channels: with a reference, ``"both"`` gives the network the frame and its
            difference from the reference; ``"difference"`` the difference alone, so nothing of
            the animal's appearance reaches the network (set ``net.in_channels`` to match).
        classes: class names in index order.
        init_from: a trained classifier checkpoint of the same network to start from
            (fine-tuning, e.g. from a large synthetic cohort): :func:`mouseemo.tasks.train` loads it
            with :func:`~mouseemo.models.checkpoint.init_weights_from` before training. It is not
            read when a trained checkpoint is loaded for inference.

    Batches are the datamodules' dicts: ``image`` uint8 ``(B,1,H,W)`` or, for a clip network (one
    with an int ``clip_length`` > 1, e.g. :class:`~mouseemo.models.components.temporal.TemporalConvNet`),
    ``frames`` uint8 ``(B,T,1,H,W)``; ``label`` ``(B,)`` is the (last) frame's class. The module
    exposes ``clip_length`` (1 for frame models) so that data loaders and inference know what to feed.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        augment: nn.Module | None = None,
        class_weighting: str = "balanced",
        label_smoothing: float = 0.0,
        standardize: bool = True,
        reference: str | None = None,
        classes: Sequence[str] = EMOTIONS,
        reference_channels: str = "both",
        init_from: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net", "augment"], logger=False)
        self.net = net
        self.augment = augment or FaceAugment(strength=0.0)
        self.classes = list(classes)
        self.reference = check_reference_kind(reference)
        if reference_channels not in ("both", "difference"):
            raise ConfigError(
                f"model.reference_channels must be 'both' or 'difference'; got {reference_channels!r}"
            )
        if reference_channels == "difference" and self.reference is None:
            raise ConfigError("model.reference_channels=difference needs a model.reference")
        self.reference_channels = reference_channels
        self.clip_length = int(getattr(net, "clip_length", 1))
        self.input_key = "frames" if self.clip_length > 1 else "image"
        self.register_buffer("class_weights", torch.ones(len(self.classes)))
        self.metrics = nn.ModuleDict({s: StageMetrics(s, self.classes) for s in ("val", "test")})
        self.test_rows: list[tuple] = []
        self.test_confmat: torch.Tensor | None = None
        self.init_from = init_from

    supports_init_from = True  # model.init_from: start the network from a trained one

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    # -- data on the device -----------------------------------------------------------------------
    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        """:meth:`prepare_batch`, augmenting while the trainer trains."""
        training = self._trainer is not None and self.trainer.training
        return self.prepare_batch(batch, augment=training)

    def prepare_batch(self, batch: dict, augment: bool = False) -> dict:
        """uint8 -> float in [0, 1], augmentation (``augment``), standardisation, reference channel.

        The frames of a clip and the session reference are stacked as channels, so one augmentation
        draw moves them all alike (a camera placement moves the reference too); each is standardised
        on its own. With a reference every frame becomes ``[frame, frame - reference]``.
        """
        reference = batch.get("reference")
        if self.reference is not None and reference is None:
            raise ConfigError(
                f"the model compares frames with a session reference ({self.reference}) but the batch "
                "has none: set data.reference (it follows model.reference by default)"
            )
        for key in ("image", "frames"):
            if key not in batch:
                continue
            img = to_unit_float(batch[key])
            clip = img.ndim == 5
            if img.shape[-3] != 1:
                raise ValueError(f"expected one-channel frames, got {batch[key].shape[-3]} channels")
            x = img.flatten(1, 2) if clip else img  # (B, T, H, W): one channel per frame
            t = x.shape[1]
            if self.reference is not None:
                ref = to_unit_float(reference)
                if ref.shape[0] != x.shape[0] or ref.shape[-2:] != x.shape[-2:]:
                    raise ValueError(
                        f"session reference of shape {tuple(ref.shape)} does not match frames {tuple(img.shape)}"
                    )
                x = torch.cat([x, ref.to(x.dtype).reshape(len(x), 1, *x.shape[-2:])], dim=1)
            if augment:
                x = self.augment(x)
            if self.hparams.standardize:
                x = standardize_frames(x)
            frames = x[:, :t, None]  # (B, T, 1, H, W)
            if self.reference is not None and self.reference_channels == "difference":
                frames = frames - x[:, t:, None]  # (B, T, 1, H, W): the change alone
            elif self.reference is not None:
                frames = torch.cat([frames, frames - x[:, t:, None]], dim=2)  # (B, T, 2, H, W)
            batch[key] = frames if clip else frames[:, 0]
        return batch

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        dm_clip = int(getattr(dm, "clip_length", 1) or 1) if dm is not None else self.clip_length
        dm_reference = getattr(dm, "reference", None) if dm is not None else self.reference
        if self.reference is not None and dm_reference != self.reference:
            raise ConfigError(
                f"the model compares frames with a session reference ({self.reference}) but the data "
                f"gives {dm_reference or 'none'}: leave data.reference to follow the model (model.reference)"
            )
        if dm_clip != self.clip_length:
            raise ConfigError(
                f"the model takes clips of {self.clip_length} frame(s) but the data gives {dm_clip}: "
                "leave data.clip_length to follow the model (model.net.clip_length)"
            )
        if stage != "fit" or dm is None or getattr(dm, "class_counts", None) is None:
            return
        weighting = self.hparams.class_weighting
        if weighting not in ("balanced", "sqrt", "none", None):
            raise ConfigError(
                f"model.class_weighting must be 'balanced', 'sqrt' or 'none'; got {weighting!r}"
            )
        if weighting in ("balanced", "sqrt") and getattr(dm, "sampler", "shuffle") == "balanced":
            log.info("balanced sampling already evens out the classes: the loss is not weighted")
        elif weighting in ("balanced", "sqrt"):
            w = dm.class_weights.to(self.class_weights)
            if weighting == "sqrt":  # milder: fewer false alarms of rare classes on neutral frames
                w = w.sqrt()
                w = w / w[w > 0].mean()
            self.class_weights.copy_(w)

    def _loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(
            logits,
            target,
            weight=self.class_weights.to(logits.dtype),
            ignore_index=IGNORE_INDEX,
            label_smoothing=self.hparams.label_smoothing,
        )

    # -- steps -------------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        logits = self(batch[self.input_key])
        loss = self._loss(logits, batch["label"])
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(logits))
        return loss

    def _eval_step(self, stage: str, batch: dict) -> torch.Tensor:
        logits = self(batch[self.input_key])
        loss = self._loss(logits, batch["label"])
        self.log(f"{stage}/loss", loss, on_epoch=True, prog_bar=stage == "val", batch_size=len(logits))
        self.metrics[stage].update(logits.argmax(1), batch["label"])
        return logits

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step("val", batch)

    def on_validation_epoch_end(self) -> None:
        self._log_stage("val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        logits = self._eval_step("test", batch)
        probs = logits.float().softmax(1).cpu()
        self._add_test_rows(batch, probs.argmax(1), probs)

    def on_test_epoch_start(self) -> None:
        self.test_rows = []

    def on_test_epoch_end(self) -> None:
        self.test_confmat = self._log_stage("test")

    def predict_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self(batch[self.input_key]).softmax(1)

    def configure_optimizers(self):
        optimizer = self.hparams.optimizer(params=self.parameters())
        if self.hparams.scheduler is None:
            return {"optimizer": optimizer}
        scheduler = self.hparams.scheduler(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
