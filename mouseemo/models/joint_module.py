"""The joint face <-> two-photon encoder as a LightningModule.

Two towers embed time-aligned windows: a face tower (frames through a CNN, or HOG features) and a
neural tower (population activity through a per-session input layer and a shared temporal
convolution, so sessions with different neurons share one embedding space). Training pulls each
face window towards its own neural window with a symmetric InfoNCE loss (learnable temperature;
windows of the same session closer than ``exclude_s`` are not used as negatives), plus, optionally,
a predictive head that reads every session's neural activity out of the face features.

Held-out metrics (``test/...``). Each comes with a ``..._shuffle`` value that rolls one side of every
test recording by half its length at evaluation time: that is at chance by construction (the floor
of the metric), not a control that can expose a shortcut. The control that can fail is trained:
``data.misalign_s`` trains on activity shifted against the camera and evaluates on the true alignment
(``benchmarks/joint.py`` prints it beside the real model).

* ``retrieval_top1`` / ``retrieval_top5``: a face window finds its neural window within
  ``retrieval_tolerance_s`` among all windows of its session (and the other way round);
* ``ve_population`` / ``ve_neuron_median``: variance of the neural activity (each window's mean)
  explained by the predictive head, as out-of-sample R² against each neuron's training mean (see
  :func:`mouseemo.models.joint_metrics.variance_explained`), next to ridge and reduced-rank
  regression from HOG principal components (``..._ridge``, ``..._rrr``, Facemap's comparison) and
  ridge from the face tower's window-mean features (``ve_population_tower_ridge``). With
  ``readout_fit="ridge"`` (default) the head's readout is refitted in closed form on the training
  windows: reduced-rank ridge from HOG principal components plus a ridge correction from the tower's
  features, its penalty (or none) chosen on the validation windows;
* ``knn_f1_embedding`` / ``knn_f1_activity``: emotion decoding (macro-F1, k nearest neighbours fitted
  on the training windows of the same session) from the neural embedding and from the raw
  population activity.

Batches are :class:`~mouseemo.data.neural_datamodule.FaceNeuralDataModule`'s. The test metrics are
computed from the windows one process sees (run the test on one device). The session layers
are created from the datamodule in ``setup`` and travel in the checkpoint (``checkpoint["joint"]``),
with the data settings and z-score statistics that ``mouseemo embed`` needs.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from mouseemo.constants import EMOTIONS
from mouseemo.errors import ConfigError
from mouseemo.models import joint_metrics as jm
from mouseemo.models.checkpoint import plain_data
from mouseemo.models.components.joint import NeuralEncoder, SessionReadout, info_nce, pool_project
from mouseemo.ops import hog
from mouseemo.utils.io import atomic_path

log = logging.getLogger(__name__)

#: Data settings recorded in the checkpoint (what ``mouseemo embed`` must reproduce).
DATA_KEYS = (
    "window",
    "signal",
    "lag_s",
    "dff_window_s",
    "imaging_fs",
    "min_overlap_s",
    "zscore",
    "image_size",
    "crop",
)

#: HOG of the baseline (ridge / reduced-rank regression from HOG principal components).
BASELINE_HOG = {"orientations": 8, "pixels_per_cell": (8, 8), "cells_per_block": (1, 1)}


def session_names(batch: dict) -> list[str]:
    return [f"{a}/{s}" for a, s in zip(batch["animal"], batch["session"])]


def stack_rows(rows: list[dict]) -> dict[str, np.ndarray] | None:
    """Concatenate per-batch rows, sorted by session then time (``None`` when empty)."""
    if not rows:
        return None
    out = {key: np.concatenate([r[key] for r in rows]) for key in rows[0]}
    order = np.lexsort((out["t"], out["names"]))
    return {k: v[order] for k, v in out.items()}


class JointLitModule(pl.LightningModule):
    """Two-tower contrastive encoder of face windows and neural windows.

    Args:
        face_encoder: frames ``(B,T,1,H,W)`` -> ``(B,T,H)`` (``.hidden`` = H).
        neural_encoder: :class:`~mouseemo.models.components.joint.NeuralEncoder`.
        optimizer: partial optimizer.
        scheduler: partial LR scheduler or ``None``.
        augment: train-time augmentation of the face frames (one draw per window, the same for all
            its frames), or ``None``.
        neural_noise: standard deviation of Gaussian noise added to the (z-scored) activity while
            training.
        embed_dim: dimension of the shared embedding.
        temperature: initial InfoNCE temperature.
        learn_temperature: learn it (CLIP's logit scale, capped at 100).
        exclude_s: same-session windows closer than this are not negatives of each other.
        predict_weight: weight of the predictive head's loss (0 turns the head off).
        retrieval_tolerance_s: a retrieved window within this of the query's time is a hit.
        knn_k: neighbours of the decoding metric.
        ridge_components, ridge_rank: the linear baseline's HOG principal components and the rank of
            its reduced-rank variant.
        readout_fit: how the predictive head's per-session readout is evaluated: ``"sgd"``, as
            trained with the loss; ``"ridge"``, refitted in closed form before the held-out metrics
            (ridge regression, penalty by blocked cross-validation, from the trained face tower's
            window-mean features together with the HOG principal components to each neuron's
            window mean, on the training windows).
        classes: emotion names in index order.
    """

    is_joint_encoder = True

    def __init__(
        self,
        face_encoder: nn.Module,
        neural_encoder: NeuralEncoder,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        augment: nn.Module | None = None,
        neural_noise: float = 0.0,
        embed_dim: int = 64,
        temperature: float = 0.1,
        learn_temperature: bool = True,
        exclude_s: float = 1.0,
        predict_weight: float = 0.5,
        retrieval_tolerance_s: float = 1.0,
        knn_k: int = 5,
        ridge_components: int = 50,
        ridge_rank: int = 8,
        readout_fit: str = "ridge",
        classes: Sequence[str] = EMOTIONS,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["face_encoder", "neural_encoder", "augment"], logger=False)
        if temperature <= 0:
            raise ConfigError(f"model.temperature must be > 0; got {temperature}")
        if readout_fit not in ("ridge", "sgd"):
            raise ConfigError(f"model.readout_fit must be 'ridge' or 'sgd'; got {readout_fit!r}")
        self.face_encoder = face_encoder
        self.neural_encoder = neural_encoder
        self.augment = augment
        self.face_head = nn.Linear(face_encoder.hidden, embed_dim)
        self.neural_head = nn.Linear(neural_encoder.hidden, embed_dim)
        self.readout = SessionReadout(face_encoder.hidden) if predict_weight > 0 else None
        self.logit_scale = nn.Parameter(
            torch.tensor(math.log(1.0 / temperature)), requires_grad=bool(learn_temperature)
        )
        self.classes = list(classes)
        self.session_stats: dict[str, dict[str, list[float]]] = {}
        self.data_record: dict[str, Any] = {}
        self._outputs: dict[str, list[dict]] = {"val": [], "test": []}

    # -- sessions -----------------------------------------------------------------------------------
    def add_session(self, name: str, num_neurons: int) -> None:
        """Give session ``name`` its neural input (and readout) layer."""
        self.neural_encoder.add_session(name, num_neurons)
        if self.readout is not None:
            self.readout.add_session(name, num_neurons)

    @property
    def sessions(self) -> dict[str, int]:
        """``{session: neurons}`` the model has layers for."""
        return self.neural_encoder.inputs.sessions()

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is None or not hasattr(dm, "session_neurons"):
            return
        for name, n in dm.session_neurons.items():
            self.add_session(name, n)
        for sf, act in zip(dm.sessions, dm.activity):
            if act.mean is not None:
                self.session_stats[sf.name] = {"mean": act.mean.tolist(), "std": act.std.tolist()}
        hp = dict(dm.hparams)
        self.data_record = {k: hp.get(k) for k in DATA_KEYS}
        self.data_record["label_source"] = hp.get("label_source")
        self.data_record["outside"] = hp.get("outside")
        self.data_record["classes"] = list(hp.get("classes") or self.classes)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # plain values only (the datamodule's settings may be omegaconf containers): the checkpoint
        # must load with torch.load(weights_only=True)
        checkpoint["joint"] = plain_data(
            {"sessions": self.sessions, "stats": self.session_stats, "data": self.data_record}
        )

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("joint") or {}
        for name, n in (state.get("sessions") or {}).items():
            self.add_session(name, int(n))
        self.session_stats = dict(state.get("stats") or {})
        self.data_record = dict(state.get("data") or {})

    # -- the towers ---------------------------------------------------------------------------------
    def forward(
        self, frames: torch.Tensor, neural: torch.Tensor, sessions: Sequence[str]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Unit-norm face and neural embeddings of windows.

        Shape:
            frames ``(B,T,1,H,W)``, neural ``(B,T,N)`` -> ``(B, D)``, ``(B, D)``.
        """
        return self.embed_face(frames), self.embed_neural(neural, sessions)

    def embed_face(self, frames: torch.Tensor) -> torch.Tensor:
        return pool_project(self.face_encoder(frames), self.face_head)

    def embed_neural(self, neural: torch.Tensor, sessions: Sequence[str]) -> torch.Tensor:
        return pool_project(self.neural_encoder(neural, sessions), self.neural_head)

    def _neuron_mask(self, names: Sequence[str], width: int, device) -> torch.Tensor:
        counts = torch.as_tensor([self.neural_encoder.inputs.num_neurons(n) for n in names], device=device)
        return (torch.arange(width, device=device)[None] < counts[:, None]).float()  # (B, N)

    def _augmented(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames and activity as the towers see them (augmented while training)."""
        frames, neural = batch["frames"], batch["neural"]
        if not self.training:
            return frames, neural
        if self.augment is not None and getattr(self.augment, "enabled", True):
            b, t, _, h, w = frames.shape
            x = frames.float() / 255.0 if frames.dtype == torch.uint8 else frames
            # the window's frames as channels: one augmentation draw per window
            frames = self.augment(x.reshape(b, t, h, w)).reshape(b, t, 1, h, w)
        if self.hparams.neural_noise > 0:
            neural = neural + self.hparams.neural_noise * torch.randn_like(neural)
        return frames, neural

    def _step(self, batch: dict) -> dict[str, torch.Tensor]:
        names = session_names(batch)
        frames, neural_in = self._augmented(batch)
        face_feat = self.face_encoder(frames)
        zf = pool_project(face_feat, self.face_head)
        zn = self.embed_neural(neural_in, names)
        scale = self.logit_scale.exp().clamp(max=100.0)
        t = batch["t_cam"][:, -1]
        loss, acc = info_nce(zf, zn, scale, times=t, groups=names, exclude_s=self.hparams.exclude_s)
        out = {"infonce": loss, "match_acc": acc, "zf": zf, "zn": zn, "names": names, "t": t,
               "face_feat": face_feat}  # fmt: skip
        total = loss
        if self.readout is not None:
            neural = batch["neural"]
            pred = self.readout(face_feat, names, width=neural.shape[-1])
            mask = self._neuron_mask(names, neural.shape[-1], neural.device)[:, None]  # (B, 1, N)
            mse = (((pred - neural) ** 2) * mask).sum() / (mask.sum() * neural.shape[1]).clamp(min=1)
            total = total + self.hparams.predict_weight * mse
            out.update(predict_mse=mse, pred=pred)
        out["loss"] = total
        return out

    # -- steps --------------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self._step(batch)
        bs = len(out["t"])
        self.log("train/loss", out["loss"], on_step=True, on_epoch=True, prog_bar=True, batch_size=bs)
        self.log("train/infonce", out["infonce"], on_epoch=True, batch_size=bs)
        self.log("train/match_acc", out["match_acc"], on_epoch=True, batch_size=bs)
        self.log(
            "train/temperature", 1.0 / self.logit_scale.exp().clamp(max=100.0), on_epoch=True, batch_size=bs
        )
        if "predict_mse" in out:
            self.log("train/predict_mse", out["predict_mse"], on_epoch=True, batch_size=bs)
        return out["loss"]

    def _row(self, batch: dict, out: dict, with_hog: bool) -> dict[str, np.ndarray]:
        """What the metrics need from one batch, on the CPU."""
        row = {
            "zf": out["zf"].detach().float().cpu().numpy(),
            "zn": out["zn"].detach().float().cpu().numpy(),
            "t": out["t"].detach().double().cpu().numpy(),
            "names": np.array(out["names"]),
            "label": batch["label"].cpu().numpy(),
            "neural_mean": batch["neural"].mean(dim=1).float().cpu().numpy(),
        }
        if "pred" in out:
            row["pred_mean"] = out["pred"].detach().float().mean(dim=1).cpu().numpy()
        row["face_feat"] = out["face_feat"].detach().float().mean(dim=1).cpu().numpy()
        if with_hog:
            frames = batch["frames"]
            with torch.no_grad():
                feats = hog(frames.flatten(0, 2), **BASELINE_HOG, chunk_size=64).float()
            row["hog"] = feats.reshape(*frames.shape[:2], -1).mean(dim=1).cpu().numpy()
        return row

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        out = self._step(batch)
        self.log("val/infonce", out["infonce"], on_epoch=True, batch_size=len(out["t"]))
        self._outputs["val"].append(self._row(batch, out, with_hog=False))

    def on_validation_epoch_start(self) -> None:
        self._outputs["val"] = []

    def on_validation_epoch_end(self) -> None:
        data = stack_rows(self._outputs["val"])
        if data is None:
            return
        r = jm.retrieval(
            data["zf"], data["zn"], data["t"], data["names"], tolerance_s=self.hparams.retrieval_tolerance_s
        )
        self.log("val/retrieval_top1", r["top1"])
        self.log("val/retrieval_top5", r["top5"], prog_bar=True)
        self._outputs["val"] = []

    def on_test_epoch_start(self) -> None:
        self._outputs["test"] = []
        self.test_metrics: dict[str, float] = {}

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._outputs["test"].append(self._row(batch, self._step(batch), with_hog=True))

    def on_test_epoch_end(self) -> None:
        test = stack_rows(self._outputs["test"])
        if test is None:
            return
        dm = getattr(self.trainer, "datamodule", None)
        if dm is None or not hasattr(dm, "reference_dataloader"):
            raise ConfigError(
                "the joint encoder's test needs its FaceNeuralDataModule (for the training windows)"
            )
        train = self._reference(dm.reference_dataloader("train"))
        val = self._reference(dm.reference_dataloader("val")) if len(dm.datasets.get("val") or []) else None
        metrics = self.held_out_metrics(train, test, val)
        self.test_metrics = metrics
        for name, value in metrics.items():
            self.log(f"test/{name}", value)
        self._write_neuron_table(test)
        self._outputs["test"] = []

    def predict_step(self, batch: dict, batch_idx: int) -> dict[str, torch.Tensor]:
        """Face and neural embeddings of a batch of windows."""
        names = session_names(batch)
        return {"face": self.embed_face(batch["frames"]), "neural": self.embed_neural(batch["neural"], names)}

    # -- evaluation ---------------------------------------------------------------------------------
    @torch.no_grad()
    def _reference(self, loader) -> dict[str, np.ndarray]:
        """Run the towers over the training windows (eval mode) and collect what the metrics need."""
        was_training = self.training
        self.eval()
        rows = []
        try:
            for batch in loader:
                batch = {k: (v.to(self.device) if torch.is_tensor(v) else v) for k, v in batch.items()}
                rows.append(self._row(batch, self._step(batch), with_hog=True))
        finally:
            self.train(was_training)
        if not rows:
            raise ConfigError("the training split has no windows to fit the decoders and baselines on")
        return stack_rows(rows)

    def held_out_metrics(
        self,
        train: dict[str, np.ndarray],
        test: dict[str, np.ndarray],
        val: dict[str, np.ndarray] | None = None,
    ) -> dict[str, float]:
        """Every ``test/...`` metric from training-window and test-window outputs (see the module doc)."""
        hp = self.hparams
        out: dict[str, float] = {}
        roll = jm.half_roll(test["names"])
        r = jm.retrieval(
            test["zf"], test["zn"], test["t"], test["names"], tolerance_s=hp.retrieval_tolerance_s
        )
        rs = jm.retrieval(
            test["zf"], test["zn"][roll], test["t"], test["names"], tolerance_s=hp.retrieval_tolerance_s
        )
        for k in (1, 5):
            out[f"retrieval_top{k}"] = r[f"top{k}"]
            out[f"retrieval_top{k}_shuffle"] = rs[f"top{k}"]
            out[f"retrieval_top{k}_chance"] = r[f"chance_top{k}"]
        counts = self.sessions
        y = test["neural_mean"]  # each window's mean activity: what the head and the baseline predict
        # out-of-sample R^2 against each neuron's training mean (see jm.variance_explained)
        ref = {
            str(g): train["neural_mean"][train["names"] == g].mean(axis=0) for g in np.unique(train["names"])
        }

        def ve(pred: np.ndarray, target: np.ndarray) -> tuple[dict[str, np.ndarray], float]:
            return jm.variance_explained(pred, target, test["names"], counts, reference=ref)

        tower_pred = np.zeros_like(y)
        head_pred = np.zeros_like(y) if hp.get("readout_fit", "sgd") == "ridge" else test.get("pred_mean")
        for g in np.unique(test["names"]):
            tr, te = train["names"] == g, test["names"] == g
            if tr.sum() < 3 or not te.any():
                continue
            n = counts.get(str(g), y.shape[1])
            y_tr = train["neural_mean"][tr, :n]
            tower_pred[te, :n] = jm.ridge_baseline(
                train["face_feat"][tr], y_tr, test["face_feat"][te], hp.ridge_components
            )
            if head_pred is not None and hp.get("readout_fit", "sgd") == "ridge":
                # reduced-rank ridge from HOG principal components, then the face tower's features on what it
                # leaves (fitted on its cross-fitted training residuals; the penalty, or no correction, chosen on
                # the validation windows, which the tower has not been trained on)
                x_tr, x_te = train["hog"][tr], test["hog"][te]
                base_te = jm.ridge_baseline(x_tr, y_tr, x_te, hp.ridge_components, rank=hp.ridge_rank)
                base_tr = jm.cross_fitted(
                    lambda a, b, c: jm.ridge_baseline(a, b, c, hp.ridge_components, rank=hp.ridge_rank),
                    x_tr, y_tr,
                )  # fmt: skip
                va = val["names"] == g if val is not None else np.zeros(0, bool)
                x_va, y_va, base_va = x_tr[:0], y_tr[:0], y_tr[:0]
                if va.any():
                    x_va, y_va = val["hog"][va], val["neural_mean"][va, :n]
                    base_va = jm.ridge_baseline(x_tr, y_tr, x_va, hp.ridge_components, rank=hp.ridge_rank)
                res, _ = jm.residual_ridge(
                    train["face_feat"][tr], y_tr - base_tr,
                    val["face_feat"][va] if va.any() else train["face_feat"][:0], y_va - base_va,
                    test["face_feat"][te], hp.ridge_components,
                )  # fmt: skip
                head_pred[te, :n] = base_te + res
        out["ve_population_tower_ridge"] = ve(tower_pred, y)[1]
        if head_pred is not None:
            per, pop = ve(head_pred, y)
            per_s, pop_s = ve(head_pred, y[roll])
            out["ve_population"] = pop
            out["ve_neuron_median"] = float(np.nanmedian(np.concatenate(list(per.values()))))
            out["ve_population_shuffle"] = pop_s
            out["ve_neuron_median_shuffle"] = float(np.nanmedian(np.concatenate(list(per_s.values()))))
            self._ve_head = per
        ridge, rrr = np.zeros_like(y), np.zeros_like(y)
        for g in np.unique(test["names"]):
            tr, te = train["names"] == g, test["names"] == g
            if tr.sum() < 3 or not te.any():
                continue
            n = counts.get(str(g), y.shape[1])
            x_tr, y_tr, x_te = train["hog"][tr], train["neural_mean"][tr, :n], test["hog"][te]
            ridge[te, :n] = jm.ridge_baseline(x_tr, y_tr, x_te, hp.ridge_components)
            rrr[te, :n] = jm.ridge_baseline(x_tr, y_tr, x_te, hp.ridge_components, rank=hp.ridge_rank)
        per_r, pop_r = ve(ridge, y)
        out["ve_population_ridge"] = pop_r
        out["ve_neuron_median_ridge"] = float(np.nanmedian(np.concatenate(list(per_r.values()))))
        per_rs, pop_rs = ve(ridge, y[roll])
        out["ve_population_ridge_shuffle"] = pop_rs
        out["ve_neuron_median_ridge_shuffle"] = float(np.nanmedian(np.concatenate(list(per_rs.values()))))
        out["ve_population_rrr"] = ve(rrr, y)[1]
        out["ve_population_rrr_shuffle"] = ve(rrr, y[roll])[1]
        self._ve_ridge = per_r
        # emotion decoding, per session: the embedding vs the raw activity, each with shuffled labels
        preds = {key: np.full(len(test["label"]), -1) for key in ("emb", "emb_s", "act", "act_s")}
        for g in np.unique(test["names"]):
            tr, te = train["names"] == g, test["names"] == g
            if tr.sum() < 2 or not te.any():
                continue
            y_tr = train["label"][tr]
            y_sh = y_tr[jm.half_roll(train["names"][tr])]
            n = counts.get(str(g), y.shape[1])
            a_tr, a_te = train["neural_mean"][tr, :n], test["neural_mean"][te, :n]
            e_tr, e_te = train["zn"][tr], test["zn"][te]
            preds["emb"][te] = jm.knn_decode(e_tr, y_tr, e_te, hp.knn_k, metric="cosine")
            preds["emb_s"][te] = jm.knn_decode(e_tr, y_sh, e_te, hp.knn_k, metric="cosine")
            preds["act"][te] = jm.knn_decode(a_tr, y_tr, a_te, hp.knn_k)
            preds["act_s"][te] = jm.knn_decode(a_tr, y_sh, a_te, hp.knn_k)
        names = {"emb": "knn_f1_embedding", "emb_s": "knn_f1_embedding_shuffle",
                 "act": "knn_f1_activity", "act_s": "knn_f1_activity_shuffle"}  # fmt: skip
        for key, name in names.items():
            out[name] = jm.macro_f1(test["label"], preds[key])
        out["num_test_windows"] = float(len(test["label"]))
        out["num_train_windows"] = float(len(train["label"]))
        return out

    def _write_neuron_table(self, test: dict[str, np.ndarray]) -> None:
        """``test_variance_explained.csv`` in the run directory: per neuron, head vs ridge."""
        if self._trainer is None or not self.trainer.is_global_zero or not hasattr(self, "_ve_ridge"):
            return
        head = getattr(self, "_ve_head", {})
        path = Path(self.trainer.default_root_dir) / "test_variance_explained.csv"
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["session", "neuron", "ve_head", "ve_ridge"])
            for g, ridge in self._ve_ridge.items():
                h = head.get(g, np.full(len(ridge), np.nan))
                for i, (a, b) in enumerate(zip(h, ridge)):
                    w.writerow([g, i, f"{a:.5f}", f"{b:.5f}"])

    def configure_optimizers(self):
        optimizer = self.hparams.optimizer(params=[p for p in self.parameters() if p.requires_grad])
        if self.hparams.scheduler is None:
            return {"optimizer": optimizer}
        scheduler = self.hparams.scheduler(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
