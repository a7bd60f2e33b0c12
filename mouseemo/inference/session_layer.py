"""A neural input layer for a session the joint encoder was not trained on (a new field of view).

:func:`fit_session_layer` keeps the towers frozen and fits only the new session's input layer (the
map from its neurons into the shared neural tower) from the session's own paired minutes: the
same symmetric InfoNCE between each face window and its neural window that trained the encoder.
The face tower's embeddings are computed once; the result is a copy of the checkpoint with the new
layer and the session's z-score statistics, which ``mouseemo embed`` then uses like any other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mouseemo.data.neural_datamodule import full_windows, zscore_activity
from mouseemo.data.session import Session
from mouseemo.errors import ConfigError, DataError
from mouseemo.inference.embed import joint_module, paired_session
from mouseemo.models.checkpoint import plain_data, read_checkpoint
from mouseemo.models.components.joint import info_nce, layer_key
from mouseemo.utils.io import atomic_path


def fit_session_layer(
    folder: str | Path,
    ckpt: str | Path,
    out_ckpt: str | Path,
    fit_until_s: float | None = None,
    fit_frames: np.ndarray | None = None,
    epochs: int = 60,
    lr: float = 3e-3,
    weight_decay: float = 0.0,
    regularise: bool = True,
    batch_size: int = 256,
    stride: int = 2,
    seed: int = 0,
    cache_dir: str | Path | None = None,
) -> dict:
    """Fit session ``folder``'s input layer with the towers of ``ckpt`` frozen; write ``out_ckpt``.

    Args:
        fit_until_s: use only the windows ending before this camera time (default: all), e.g. to
            keep later minutes for checking the fitted layer.
        fit_frames: ``(T,)`` bool over the session's camera frames: use only the windows whose every
            frame is True (e.g. some time blocks, keeping the others for checking).
        epochs, lr, weight_decay, batch_size: the fit (AdamW over the layer's weights).
        regularise: fit with the training run's neural noise and dropout (as the layers of the
            trained sessions were), rather than on the clean activity.
        stride: imaging frames between fitted windows.

    Returns:
        ``{"session", "neurons", "windows", "match_acc"}`` (the last epoch's in-batch matching accuracy).
    """
    torch.manual_seed(seed)
    module = joint_module(ckpt)
    session = Session.open(folder)
    name = session.name
    if name in module.sessions:
        raise ConfigError(f"{ckpt} already has a neural layer for session {name}; embed it directly")
    p = paired_session(session, module, cache_dir)
    use = np.ones(len(p["ends"]), bool)
    if fit_until_s is not None:
        use &= p["times"][p["ends"]] < fit_until_s
    if fit_frames is not None:
        fit_frames = np.asarray(fit_frames)
        if fit_frames.dtype != bool or fit_frames.shape != p["times"].shape:
            raise ConfigError(
                f"fit_frames must be a bool array over the session's {len(p['times'])} camera frames; "
                f"got {fit_frames.dtype} {fit_frames.shape}"
            )
        use &= full_windows(fit_frames, p["times"], p["window"], skip_gaps=False)[p["ends"] - p["window"] + 1]
    sel = np.flatnonzero(use)[:: max(int(stride), 1)]
    if len(sel) < 16:
        raise DataError(f"{session.path}: only {len(sel)} paired windows to fit a session layer on (need 16)")
    ends, window = p["ends"][sel], p["window"]
    ref = np.zeros(len(p["valid"]), bool)
    ref[ends] = True
    neural, mean, std = zscore_activity(p["neural_raw"], p["valid"], ref & p["valid"])
    idx = ends[:, None] + np.arange(-window + 1, 1)[None]
    frames = np.load(p["cache"].path, mmap_mode="r")
    with torch.no_grad():
        zf = torch.cat([
            module.embed_face(torch.from_numpy(
                np.asarray(frames[i.ravel()]).reshape(len(i), window, 1, *frames.shape[1:])
            ))
            for i in np.array_split(idx, max(1, len(idx) // 128))
        ])  # fmt: skip
    x = torch.from_numpy(neural[idx])  # (M, T, N)
    module.add_session(name, x.shape[-1])
    for q in module.parameters():
        q.requires_grad_(False)
    layer = list(module.neural_encoder.inputs.layers[layer_key(name)].parameters())
    for q in layer:
        q.requires_grad_(True)
    opt = torch.optim.AdamW(layer, lr=lr, weight_decay=weight_decay)
    noise = float(module.hparams.get("neural_noise", 0.0) or 0.0) if regularise else 0.0
    module.neural_encoder.train(regularise)  # the training run's neuron and feature dropout
    scale = module.logit_scale.exp().clamp(max=100.0)
    t = torch.from_numpy(p["times"][ends])
    exclude = float(module.hparams.get("exclude_s", 1.0))
    acc = 0.0
    for _ in range(int(epochs)):
        for b in torch.randperm(len(x)).split(batch_size):
            xb = x[b] + noise * torch.randn_like(x[b]) if noise > 0 else x[b]
            zn = module.embed_neural(xb, [name] * len(b))
            loss, a = info_nce(zf[b], zn, scale, times=t[b], groups=[name] * len(b), exclude_s=exclude)
            opt.zero_grad()
            loss.backward()
            opt.step()
            acc = float(a)
    module.neural_encoder.eval()
    ckpt_dict = read_checkpoint(Path(ckpt))
    ckpt_dict["state_dict"] = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    for key in ("optimizer_states", "lr_schedulers"):
        ckpt_dict.pop(key, None)
    stats = {**module.session_stats, name: {"mean": mean.tolist(), "std": std.tolist()}}
    ckpt_dict["joint"] = plain_data({"sessions": module.sessions, "stats": stats, "data": module.data_record})
    with atomic_path(Path(out_ckpt)) as tmp:
        torch.save(ckpt_dict, tmp)
    return {"session": name, "neurons": int(x.shape[-1]), "windows": len(sel), "match_acc": acc}


__all__ = ["fit_session_layer"]
