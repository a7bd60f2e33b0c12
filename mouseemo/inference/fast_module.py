"""An inference-only copy of a trained module: batch norms folded into their convolutions, channels last.

:func:`inference_copy` is what :class:`~mouseemo.inference.scorers.CheckpointScorer` scores with
(the original module stays as loaded, for explanations that need its gradients and layers):

* every ``Conv2d`` directly followed by an eval-mode ``BatchNorm2d`` in an ``nn.Sequential`` (the
  ``conv_bn_relu`` blocks of the project's CNNs) becomes one convolution with the batch norm's scale
  and shift folded in, and the batch norm an ``Identity``: one pass over the activations fewer;
* on a CPU, 4-D weights are stored channels-last, which oneDNN's convolutions run faster (about 1.5x
  for the small CNNs at batch 1 in the measurements of ``benchmarks/live.py``).

The outputs are those of the original up to float rounding (folding reorders a multiply and an add:
differences of about 1e-7 relative). A module in training mode, or one whose copy fails, is used as
it is.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batch_norms(module: nn.Module) -> int:
    """Fold eval-mode ``BatchNorm2d`` layers into the ``Conv2d`` before them, in place; the count folded."""
    folded = 0
    for seq in module.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        names = list(seq._modules)
        for a, b in zip(names[:-1], names[1:]):
            conv, bn = seq._modules[a], seq._modules[b]
            if (
                isinstance(conv, nn.Conv2d)
                and isinstance(bn, nn.BatchNorm2d)
                and not bn.training
                and bn.track_running_stats
                and bn.running_mean is not None
                and conv.out_channels == bn.num_features
            ):
                seq._modules[a] = fuse_conv_bn_eval(conv, bn)
                seq._modules[b] = nn.Identity()
                folded += 1
    return folded


def inference_copy(module: nn.Module, device: torch.device | str) -> nn.Module:
    """A folded (and, on a CPU, channels-last) copy of ``module`` for scoring; ``module`` itself when
    it is training or cannot be copied."""
    if module.training:
        return module
    try:
        fast = copy.deepcopy(module)
    except Exception:  # noqa: BLE001 - a module holding something that does not copy: score with it as is
        return module
    fold_batch_norms(fast)
    if torch.device(device).type == "cpu":
        fast = fast.to(memory_format=torch.channels_last)
    return fast.eval()


__all__ = ["fold_batch_norms", "inference_copy"]
