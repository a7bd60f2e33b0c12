"""Training callbacks of mouseemo's own (beyond Lightning's checkpointing and early stopping)."""

from __future__ import annotations

from mouseemo.errors import ConfigError


def is_weight_averaging(callback) -> bool:
    """Whether ``callback`` averages the weights (Lightning's ``WeightAveraging`` family)."""
    try:
        from pytorch_lightning.callbacks import WeightAveraging
    except ImportError:  # older Lightning: no weight averaging to find
        return False
    return isinstance(callback, WeightAveraging)


def ema_weight_averaging(decay: float = 0.995, update_starting_at_epoch: int | None = None, **kwargs):
    """Lightning's exponential moving average of the weights (``EMAWeightAveraging``).

    Validation, testing and the saved checkpoints use the averaged weights, which change smoothly
    from epoch to epoch. On held-out animals a single network's score can jump by 0.3 macro-F1
    between neighbouring epochs, so the best-on-validation epoch is often a lucky one; the average
    removes most of that noise and generalises at least as well as the last epoch.

    Args:
        decay: weight of the running average per training step (0.995: about the last 200 steps).
        update_starting_at_epoch: start averaging at this epoch (``None``: from the first step).
        kwargs: passed on (``device``, ``use_buffers``, ``update_every_n_steps``, ...).

    Raises:
        ConfigError: this pytorch-lightning has no weight averaging (it came with 2.6).
    """
    if not 0.0 < float(decay) < 1.0:
        raise ConfigError(f"EMA decay must lie in (0, 1); got {decay}")
    try:
        from pytorch_lightning.callbacks import EMAWeightAveraging
    except ImportError:
        import pytorch_lightning as pl

        raise ConfigError(
            f"callbacks=ema needs pytorch-lightning >= 2.6 (EMAWeightAveraging); this is {pl.__version__}"
        ) from None
    return EMAWeightAveraging(decay=float(decay), update_starting_at_epoch=update_starting_at_epoch, **kwargs)
