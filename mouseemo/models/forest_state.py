"""A fitted scikit-learn PCA + random forest pipeline as plain data (tensors, numbers, strings).

``hog_rf`` checkpoints store the fitted pipeline of :class:`~mouseemo.models.hog_rf_module.HogRFLitModule`
with :func:`to_plain` and rebuild it with :func:`from_plain`, so that checkpoints load with
``torch.load(weights_only=True)`` and never unpickle. The rebuilt estimators have exactly the state the
fitted ones had (the same attributes, arrays bit for bit), so they predict identically.

Only these scikit-learn classes are rebuilt, by name from a fixed table (nothing is imported from a
name found in the file): ``Pipeline``, ``PCA``, ``RandomForestClassifier``, ``DecisionTreeClassifier``
and the trees' ``Tree``. Their attributes may hold ``None``, booleans, numbers, strings, lists,
tuples, dicts with string keys, numpy scalars and numpy arrays of numbers (stored as tensors), and
other objects of the table; anything else is refused when saving. Tree arrays are checked on loading
(child indices, split features), so a tampered file cannot send the compiled tree code out of bounds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mouseemo.errors import DataError

#: Format tag written beside the state (bump when the layout changes).
FORMAT = "mouseemo-sklearn-plain-1"

_OBJ, _ARR, _STRUCT, _SCALAR = "__sklearn__", "__ndarray__", "__structured__", "__npscalar__"


def _classes() -> dict[str, type]:
    from sklearn.decomposition import PCA
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.tree import DecisionTreeClassifier
    from sklearn.tree._tree import Tree

    return {
        "Pipeline": Pipeline,
        "PCA": PCA,
        "RandomForestClassifier": RandomForestClassifier,
        "DecisionTreeClassifier": DecisionTreeClassifier,
        "Tree": Tree,
    }


def to_plain(obj: Any) -> Any:
    """``obj`` (a fitted pipeline, or any value inside it) as plain, ``weights_only``-loadable data.

    Raises:
        TypeError: a value of a type not listed in the module docstring.
    """
    table = _classes()
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, np.generic):
        return {_SCALAR: obj.dtype.str, "value": obj.item()}
    if isinstance(obj, np.ndarray):
        if obj.dtype.names is not None:
            return {
                _STRUCT: {name: _tensor(np.ascontiguousarray(obj[name])) for name in obj.dtype.names},
                "names": list(obj.dtype.names),
                "formats": [obj.dtype.fields[n][0].str for n in obj.dtype.names],
                "offsets": [int(obj.dtype.fields[n][1]) for n in obj.dtype.names],
                "itemsize": int(obj.dtype.itemsize),
            }
        return {_ARR: _tensor(obj)}
    if isinstance(obj, list):
        return [to_plain(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(to_plain(v) for v in obj)
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise TypeError(f"cannot store a dict with non-string keys: {list(obj)[:3]}")
        return {k: to_plain(v) for k, v in obj.items()}
    name = type(obj).__name__
    if table.get(name) is type(obj):
        out: dict[str, Any] = {_OBJ: name, "state": to_plain(obj.__getstate__())}
        if name == "Tree":  # a compiled class: built from (n_features, n_classes, n_outputs)
            out["args"] = to_plain(tuple(obj.__reduce__()[1]))
        return out
    raise TypeError(f"cannot store a {type(obj).__module__}.{type(obj).__qualname__} as plain data")


def _tensor(arr: np.ndarray) -> torch.Tensor:
    if arr.dtype.byteorder == ">" or arr.dtype.kind not in "biuf":
        raise TypeError(f"cannot store an array of dtype {arr.dtype} as plain data")
    # order "K" keeps a Fortran-ordered array (PCA's components) Fortran-ordered: the same layout
    # gives the same BLAS results, bit for bit
    return torch.from_numpy(np.array(arr, copy=True, order="K"))


def from_plain(data: Any, source: str = "the checkpoint") -> Any:
    """Rebuild what :func:`to_plain` stored.

    Raises:
        DataError: an unknown class, a malformed entry or inconsistent tree arrays (names ``source``).
    """
    try:
        return _decode(data, _classes(), source)
    except DataError:
        raise
    except (TypeError, ValueError, KeyError, IndexError) as err:
        raise DataError(f"{source}: the random forest state is malformed: {err}") from None


def _decode(data: Any, table: dict[str, type], source: str) -> Any:
    if data is None or isinstance(data, bool | int | float | str):
        return data
    if isinstance(data, list):
        return [_decode(v, table, source) for v in data]
    if isinstance(data, tuple):
        return tuple(_decode(v, table, source) for v in data)
    if not isinstance(data, dict):
        raise DataError(f"{source}: unexpected {type(data).__name__} in the random forest state")
    if _SCALAR in data:
        return np.dtype(data[_SCALAR]).type(data["value"])
    if _ARR in data:
        return _array(data[_ARR], source)
    if _STRUCT in data:
        dtype = np.dtype(
            {"names": data["names"], "formats": data["formats"], "offsets": data["offsets"],
             "itemsize": data["itemsize"]}
        )  # fmt: skip
        fields = {n: _array(data[_STRUCT][n], source) for n in data["names"]}
        length = len(next(iter(fields.values()))) if fields else 0
        arr = np.zeros(length, dtype=dtype)
        for n, values in fields.items():
            arr[n] = values
        return arr
    if _OBJ in data:
        name = data[_OBJ]
        cls = table.get(name) if isinstance(name, str) else None
        if cls is None:
            raise DataError(
                f"{source}: refusing to rebuild {name!r} (only {sorted(table)} are rebuilt from a checkpoint)"
            )
        state = _decode(data["state"], table, source)
        if not isinstance(state, dict):
            raise DataError(f"{source}: the state of {name} is not a dict")
        if name == "Tree":
            n_features, n_classes, n_outputs = _decode(data["args"], table, source)
            _check_tree(state, int(n_features), source)
            obj = cls(int(n_features), np.asarray(n_classes, dtype=np.intp), int(n_outputs))
        else:
            obj = cls.__new__(cls)
        obj.__setstate__(state)
        return obj
    return {k: _decode(v, table, source) for k, v in data.items()}


def _array(t: Any, source: str) -> np.ndarray:
    if not isinstance(t, torch.Tensor):
        raise DataError(f"{source}: expected an array in the random forest state, got {type(t).__name__}")
    return np.array(t.detach().cpu().numpy(), copy=True, order="K")  # keeps the memory order


def _check_tree(state: dict, n_features: int, source: str) -> None:
    """Refuse tree arrays the compiled prediction code could index out of bounds with."""
    nodes, values = state.get("nodes"), state.get("values")
    count = state.get("node_count")
    if not isinstance(nodes, np.ndarray) or not isinstance(values, np.ndarray) or not isinstance(count, int):
        raise DataError(f"{source}: a tree of the random forest lacks its arrays")
    if len(nodes) != count or len(values) != count or count < 1:
        raise DataError(f"{source}: a tree of the random forest has inconsistent array lengths")
    idx = np.arange(count)
    left, right, feature = nodes["left_child"], nodes["right_child"], nodes["feature"]
    leaf = left == -1
    ok = (
        np.all((right == -1) == leaf)
        and np.all(left[~leaf] > idx[~leaf])
        and np.all(right[~leaf] > idx[~leaf])
        and np.all(left[~leaf] < count)
        and np.all(right[~leaf] < count)
        and np.all((feature[~leaf] >= 0) & (feature[~leaf] < n_features))
    )
    if not ok:
        raise DataError(f"{source}: a tree of the random forest has out-of-range child or feature indices")
