"""Check config values against the type hints of what they configure, before instantiating it.

``python train.py data.batch_size=abc`` would otherwise build a datamodule with ``batch_size='abc'``
and fail much later inside torch. :func:`check_config_types` reads the ``__init__`` signature of the
``_target_`` (and of nested targets) and refuses values of the wrong type for parameters annotated
``int``, ``float``, ``bool`` or ``str``, optionally with ``None`` or each other (``int | float``):
``ConfigError("data.batch_size: expected an integer, got 'abc'")``. Integers are fine where a float
is expected; booleans are not integers here. Parameters with other annotations (lists, tensors,
literals, classes), values that are containers or interpolations that fail to resolve, and targets
that cannot be imported are left to the code itself.

Numbers that only make sense in a range are refused by name wherever they appear, whatever their
target: a ``batch_size`` or ``max_epochs`` below 1 (Lightning reads ``max_epochs=-1`` as "no limit"
and would train until early stopping), a negative ``num_workers`` or ``min_epochs``, an ``lr`` that
is not above 0, and any of them that is NaN or infinite:
``ConfigError("trainer.max_epochs must be >= 1; got -1")``.
"""

from __future__ import annotations

import inspect
import math
import sys
import types
import typing
from typing import Any

from omegaconf import DictConfig, ListConfig

from mouseemo.errors import ConfigError

_PRIMITIVES = (int, float, bool, str)
_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
#: ``{parameter: (lowest value, whether the lowest value itself is allowed)}``, checked by name.
_BOUNDS: dict[str, tuple[float, bool]] = {
    "batch_size": (1, True),
    "max_epochs": (1, True),
    "min_epochs": (0, True),
    "num_workers": (0, True),
    "lr": (0, False),
}


def check_config_types(conf: Any, key: str) -> None:
    """Refuse values in ``conf`` (a config with ``_target_``, checked recursively) whose type does not
    match the annotation of the parameter they set; ``key`` is the config's dotted name (``data``).

    Raises:
        ConfigError: ``"<key>.<param>: expected an integer, got 'abc'"``.
    """
    if isinstance(conf, ListConfig):
        for i, item in enumerate(_items(conf)):
            check_config_types(item, f"{key}.{i}")
        return
    if not isinstance(conf, DictConfig):
        return
    hints = _target_hints(conf.get("_target_")) if "_target_" in conf else {}
    for name in list(conf.keys()):
        name = str(name)
        if name.startswith("_"):
            continue
        try:
            value = conf[name]
        except Exception:  # noqa: BLE001 - an interpolation that fails: reported where it is used
            continue
        if isinstance(value, DictConfig | ListConfig):
            check_config_types(value, f"{key}.{name}")
            continue
        _check_bounds(value, f"{key}.{name}", _BOUNDS.get(name))
        allowed = hints.get(name)
        if allowed is None or _matches(value, allowed):
            continue
        hint = ""
        if str in allowed and isinstance(value, int | float) and not isinstance(value, bool):
            hint = f" (quote it: {key}.{name}=\"'{value}'\")"
        raise ConfigError(f"{key}.{name}: expected {_describe(allowed)}, got {value!r}{hint}")


def _check_bounds(value: Any, key: str, bound: tuple[float, bool] | None) -> None:
    """ConfigError naming ``key`` when the number ``value`` lies outside ``bound`` (or is NaN/inf)."""
    if bound is None or isinstance(value, bool) or not isinstance(value, int | float):
        return
    low, inclusive = bound
    if not math.isfinite(value) or value < low or (value == low and not inclusive):
        raise ConfigError(f"{key} must be {'>=' if inclusive else '>'} {low}; got {value!r}")


def _items(conf: ListConfig) -> list[Any]:
    out = []
    for i in range(len(conf)):
        try:
            out.append(conf[i])
        except Exception:  # noqa: BLE001
            out.append(None)
    return out


def _target_hints(target: Any) -> dict[str, tuple[type | None, ...]]:
    """``{parameter: allowed types}`` of the parameters of ``target`` with a checkable annotation."""
    if not isinstance(target, str):
        return {}
    try:
        from hydra.utils import get_object

        obj = get_object(target)
    except Exception:  # noqa: BLE001 - an unknown target fails in instantiate, with Hydra's message
        return {}
    fn = obj.__init__ if inspect.isclass(obj) else obj
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
    out = {}
    for name, param in params.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        allowed = _allowed(_annotation(fn, param.annotation))
        if allowed is not None:
            out[name] = allowed
    return out


def _annotation(fn: Any, ann: Any) -> Any:
    """The annotation object (string annotations evaluated in the function's module), or ``None``."""
    if ann is inspect.Parameter.empty:
        return None
    if isinstance(ann, str):
        module = sys.modules.get(getattr(inspect.unwrap(fn), "__module__", "") or "")
        try:
            return eval(ann, dict(vars(module)) if module else {})  # noqa: S307 - the target's own source
        except Exception:  # noqa: BLE001 - names only imported for type checkers
            return None
    return ann


def _allowed(ann: Any) -> tuple[type | None, ...] | None:
    """Types ``ann`` admits (``None`` for NoneType) if all are int/float/bool/str/None, else ``None``."""
    if ann in _PRIMITIVES:
        return (ann,)
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        out: list[type | None] = []
        for arg in typing.get_args(ann):
            if arg is type(None):
                out.append(None)
            elif arg in _PRIMITIVES:
                out.append(arg)
            else:
                return None
        return tuple(out)
    return None


def _matches(value: Any, allowed: tuple[type | None, ...]) -> bool:
    if value is None:
        return None in allowed
    if isinstance(value, bool):
        return bool in allowed
    if isinstance(value, int):
        return int in allowed or float in allowed
    if isinstance(value, float):
        return float in allowed
    if isinstance(value, str):
        return str in allowed
    return True  # some other object (passed in code): not ours to judge


def _describe(allowed: tuple[type | None, ...]) -> str:
    names = [_NAMES[t] for t in allowed if t is not None and not (t is int and float in allowed)]
    if None in allowed:
        names.append("null")
    return " or ".join(names)
