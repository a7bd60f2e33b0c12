"""Which ``_target_`` a config read from a file (a checkpoint's model record) may rebuild.

Hydra's ``instantiate`` calls whatever ``_target_`` names. The user's own configs (``conf/`` and
command-line overrides) are trusted, but a model record stored in a checkpoint comes from whoever wrote
the file: :func:`check_targets` is called before such a record is instantiated. It walks the record
(dicts and lists, nested ones too) and accepts only these targets:

* classes defined in ``mouseemo.models`` (its modules and components) that are torch modules: the
  LightningModules, networks, encoders and augmentation;
* torch optimisers (``torch.optim.*``, subclasses of ``Optimizer``) and learning-rate schedulers
  (``torch.optim.lr_scheduler.*``);
* torchvision model builders and model classes (``torchvision.models.*``).

The name is checked as text before anything is imported, then the object it names is checked
(so ``mouseemo.models.checkpoint.torch.load`` or a function of ``mouseemo.models`` is refused).
``_partial_: true`` (how the configs pass optimisers and schedulers) is a flag, not a target.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

from mouseemo.errors import DataError

#: Module prefixes a target name must start with.
ALLOWED_PREFIXES = ("mouseemo.models.", "torch.optim.", "torchvision.models.")

ALLOWED_TEXT = "only mouseemo models, torch optimisers/schedulers and torchvision builders are allowed"


def iter_targets(record: Any, key: str = "") -> list[tuple[str, Any]]:
    """``(dotted key, _target_ value)`` of every target in ``record``, nested ones included."""
    out: list[tuple[str, Any]] = []
    if isinstance(record, dict):
        items = record.items()
    elif isinstance(record, list | tuple):
        items = ((str(i), v) for i, v in enumerate(record))
    else:
        try:  # an omegaconf container
            from omegaconf import DictConfig, ListConfig, OmegaConf

            if isinstance(record, DictConfig | ListConfig):
                return iter_targets(OmegaConf.to_container(record, resolve=False), key)
        except ImportError:  # pragma: no cover - omegaconf comes with hydra
            pass
        return out
    for k, v in items:
        sub = f"{key}.{k}" if key else str(k)
        if k == "_target_":
            out.append((key or "_target_", v))
        else:
            out.extend(iter_targets(v, sub))
    return out


def is_allowed_target(target: Any) -> bool:
    """Whether ``target`` (a dotted name) names a mouseemo model, torch optimiser/scheduler or
    torchvision builder; imports only modules under :data:`ALLOWED_PREFIXES`."""
    if not isinstance(target, str) or not target.startswith(ALLOWED_PREFIXES):
        return False
    parts = target.split(".")
    if any(not p.isidentifier() for p in parts):
        return False
    obj = _resolve(parts)
    if obj is None:
        return False
    import torch

    if target.startswith("mouseemo.models."):
        return (
            inspect.isclass(obj)
            and obj.__module__.startswith("mouseemo.models.")
            and issubclass(obj, torch.nn.Module)
        )
    if target.startswith("torch.optim."):
        sched = torch.optim.lr_scheduler
        bases = tuple(
            b
            for b in (torch.optim.Optimizer, getattr(sched, "LRScheduler", None), sched.ReduceLROnPlateau)
            if b
        )
        return inspect.isclass(obj) and issubclass(obj, bases)
    # torchvision.models
    module = getattr(obj, "__module__", "") or ""
    if not module.startswith("torchvision.models"):
        return False
    return (inspect.isclass(obj) and issubclass(obj, torch.nn.Module)) or inspect.isfunction(obj)


def _resolve(parts: list[str]) -> Any:
    """The object a dotted name names (longest importable module, then attributes), or ``None``."""
    for i in range(len(parts) - 1, 0, -1):
        name = ".".join(parts[:i])
        if not (name + ".").startswith(ALLOWED_PREFIXES):
            return None  # never import a module outside the allowed packages
        try:
            obj: Any = importlib.import_module(name)
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def check_targets(record: Any, source: str | Path) -> None:
    """Refuse a config read from ``source`` if any ``_target_`` in it is not allowed.

    Raises:
        DataError: naming ``source``, the offending target and its key.
    """
    for key, target in iter_targets(record):
        if not is_allowed_target(target):
            where = f" at {key}" if key and key != "_target_" else ""
            raise DataError(f"{source}: refusing to rebuild model target {target!r}{where} ({ALLOWED_TEXT})")
