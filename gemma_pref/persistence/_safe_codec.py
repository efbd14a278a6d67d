# SPDX-License-Identifier: Apache-2.0
"""The safe format's values: JSON and numeric arrays, to and from estimators.

:class:`Writer` encodes an estimator tree into JSON values, collecting numeric
arrays and the files that some types write in their own format; :class:`Reader`
decodes it, building only the classes of the registry it is given and never
unpickling. :class:`SafeType` describes one class of that registry.
"""

from __future__ import annotations

import importlib
import inspect
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._versioning import STAMP
from ..exceptions import SafeFormatError

__all__ = ["ARRAYS", "Reader", "SafeType", "Writer"]

#: The numeric arrays of a ``save_safe`` directory, read with ``allow_pickle=False``.
ARRAYS = "arrays.npz"
_TORCH_DTYPES = ("float16", "bfloat16", "float32", "float64")


@dataclass(frozen=True)
class SafeType:
    """A class that :func:`save_safe` writes and :func:`load_safe` builds.

    Parameters
    ----------
    module, attr : str
        Where the class lives: ``getattr(importlib.import_module(module), attr)``.
    write_state : callable or None, default=None
        ``write_state(estimator, writer, where) -> dict``: the fitted state as
        JSON values to store in the manifest node (under ``"state"``), writing
        any file it needs with ``writer.add_file(prefix, suffix, save)``.
        ``None``: the attributes that are not parameters, encoded as JSON
        values and numeric arrays.
    read_state : callable or None, default=None
        ``read_state(estimator, node_state, reader, where)``: restore the
        state written by ``write_state`` into a new estimator built from its
        parameters, reading files with ``reader.member(name, where)``.
        ``None``: set each decoded attribute.
    """

    module: str
    attr: str
    write_state: Callable[[Any, Writer, str], Any] | None = None
    read_state: Callable[[Any, Any, Reader, str], None] | None = None

    def load_class(self) -> type:
        """Import and return the class."""
        return getattr(importlib.import_module(self.module), self.attr)


def _default_write_state(est: Any, writer: Writer, where: str) -> Any:
    return writer.state(est, where)


def _default_read_state(est: Any, state: Any, reader: Reader, where: str) -> None:
    reader.set_state(est, state, where)


def _type_name(cls: type, types: dict[str, SafeType]) -> str | None:
    """The registry name of exactly ``cls`` (not a subclass), or None."""
    for name, kind in types.items():
        if cls.__name__ != kind.attr or not cls.__module__.startswith(kind.module.split(".")[0]):
            continue
        try:
            if kind.load_class() is cls:
                return name
        except ImportError:
            continue
    return None


def _is_estimator(value: Any) -> bool:
    return hasattr(value, "get_params") and hasattr(value, "fit")


_SKIPPED_STATE = ("_sklearn_version", STAMP)


class Writer:
    """Encode an estimator tree to JSON; collect arrays and CatBoost models."""

    def __init__(self, types: dict[str, SafeType]) -> None:
        self.types = types
        self.arrays: dict[str, np.ndarray] = {}
        self.files: dict[str, Callable[[Path], Any]] = {}

    def add_file(self, prefix: str, suffix: str, save: Callable[[Path], Any]) -> str:
        """Register a file of the directory; ``save(path)`` writes it. Returns its name."""
        name = f"{prefix}-{len(self.files)}{suffix}"
        self.files[name] = save
        return name

    def encode(self, value: Any, where: str) -> Any:
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int) and not isinstance(value, np.generic):
            return value
        if isinstance(value, float) and not isinstance(value, np.generic):
            if math.isfinite(value):
                return value
            return {"__type__": "float", "value": repr(value)}
        if isinstance(value, np.ndarray):
            return self._array(value, where)
        if isinstance(value, np.generic):
            if value.dtype.kind not in "biuf":
                raise self._error(where, value, "a numpy scalar of this dtype")
            return {
                "__type__": "npscalar",
                "dtype": value.dtype.str,
                "value": self.encode(value.item(), where),
            }
        if isinstance(value, (list, tuple)):
            return {
                "__type__": type(value).__name__,
                "items": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)],
            }
        if isinstance(value, dict):
            items = []
            for k, v in value.items():
                if not isinstance(k, (str, int)) or isinstance(k, bool):
                    raise self._error(f"{where} key", k, "a dict key that is not str or int")
                items.append([k, self.encode(v, f"{where}[{k!r}]")])
            return {"__type__": "dict", "items": items}
        if isinstance(value, os.PathLike):
            return {"__type__": "path", "value": os.fspath(value)}
        if type(value).__module__ == "torch" and type(value).__name__ == "dtype":
            name = str(value).replace("torch.", "")
            if name not in _TORCH_DTYPES:
                raise self._error(where, value, "this torch dtype")
            return {"__type__": "torch_dtype", "value": name}
        if _is_estimator(value):
            return self._estimator(value, where)
        raise self._error(where, value, f"a {type(value).__name__}")

    def _estimator(self, est: Any, where: str) -> dict[str, Any]:
        name = _type_name(type(est), self.types)
        if name is None:
            raise SafeFormatError(
                f"{where}: {type(est).__module__}.{type(est).__qualname__} is not "
                f"one of the types save_safe writes ({', '.join(self.types)}); "
                "save it with gemma_pref.save (joblib) instead, and load that "
                "file only where you trust it."
            )
        where = f"{where}({type(est).__name__})"
        params = est.get_params(deep=False)
        node: dict[str, Any] = {
            "__type__": "estimator",
            "class": name,
            "params": {k: self.encode(v, f"{where}.{k}") for k, v in sorted(params.items())},
        }
        kind = self.types[name]
        write = kind.write_state or _default_write_state
        node["state"] = write(est, self, where)
        return node

    def state(self, est: Any, where: str, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
        """The fitted state of ``est`` (attributes that are not parameters),
        encoded; ``exclude`` names attributes a hook writes itself."""
        params = est.get_params(deep=False)
        state = {
            k: v
            for k, v in vars(est).items()
            if k not in params
            and k not in _SKIPPED_STATE
            and k not in exclude
            and not k.startswith("_lazy_")
        }
        return {k: self.encode(v, f"{where}.{k}") for k, v in sorted(state.items())}

    def _array(self, value: np.ndarray, where: str) -> dict[str, Any]:
        if value.dtype.kind in "biufc":
            key = f"a{len(self.arrays)}"
            self.arrays[key] = value
            return {"__type__": "ndarray", "key": key}
        if value.dtype.kind in "OU" and all(isinstance(v, str) for v in value.flat):
            return {
                "__type__": "str_array",
                "dtype": "object" if value.dtype.kind == "O" else value.dtype.str,
                "shape": list(value.shape),
                "items": [str(v) for v in value.flat],
            }
        raise self._error(where, value, f"an array of dtype {value.dtype}")

    @staticmethod
    def _error(where: str, value: Any, what: str) -> SafeFormatError:
        text = repr(value)
        if len(text) > 60:
            text = text[:57] + "..."
        return SafeFormatError(
            f"{where} is {text}: save_safe cannot write {what} without pickle "
            "(it writes JSON values, numeric arrays, paths and the estimators of "
            "SAFE_TYPES). Give a JSON-able value (a string template, a tokenizer "
            "path), or save with gemma_pref.save (joblib) and load that file "
            "only where you trust it."
        )


class Reader:
    """Decode a manifest tree; build only SAFE_TYPES; never unpickle."""

    def __init__(self, root: Path, types: dict[str, SafeType]) -> None:
        self.root = root
        self.types = types
        self._arrays: Any = None

    def close(self) -> None:
        if self._arrays is not None:
            self._arrays.close()

    def error(self, where: str, what: str) -> SafeFormatError:
        """The error of a folder that cannot be read: its path, where in it, what is wrong."""
        return SafeFormatError(f"{str(self.root)!r}: {where}: {what}; refused.")

    def array(self, key: Any, where: str) -> np.ndarray:
        if self._arrays is None:
            file = self.root / ARRAYS
            if not file.is_file():
                raise self.error(where, f"{ARRAYS} is missing")
            self._arrays = np.load(file, allow_pickle=False)
        if not isinstance(key, str) or key not in self._arrays.files:
            raise self.error(where, f"no array {key!r} in {ARRAYS}")
        try:
            return self._arrays[key]
        except ValueError as exc:  # an object array: needs pickle
            raise self.error(where, f"array {key!r} needs pickle ({exc})") from None

    def decode(self, value: Any, where: str) -> Any:
        if value is None or isinstance(value, (bool, str, int, float)):
            return value
        if not isinstance(value, dict):
            raise self.error(where, f"unexpected JSON {type(value).__name__}")
        kind = value.get("__type__")
        if kind == "float":
            text = value.get("value")
            if text not in ("nan", "inf", "-inf"):
                raise self.error(where, f"bad float {text!r}")
            return float(text)
        if kind in ("list", "tuple"):
            items = value.get("items")
            if not isinstance(items, list):
                raise self.error(where, f"bad {kind}")
            out = [self.decode(v, f"{where}[{i}]") for i, v in enumerate(items)]
            return out if kind == "list" else tuple(out)
        if kind == "dict":
            return self._dict(value.get("items"), where)
        if kind == "ndarray":
            return self.array(value.get("key"), where)
        if kind == "str_array":
            return self._str_array(value, where)
        if kind == "npscalar":
            dtype = np.dtype(str(value.get("dtype")))
            if dtype.kind not in "biuf":
                raise self.error(where, f"numpy scalar of dtype {dtype}")
            return dtype.type(self.decode(value.get("value"), where))
        if kind == "path":
            return Path(str(value.get("value")))
        if kind == "torch_dtype":
            name = value.get("value")
            if name not in _TORCH_DTYPES:
                raise self.error(where, f"torch dtype {name!r}")
            import torch

            return getattr(torch, name)
        if kind == "estimator":
            return self._estimator(value, where)
        raise self.error(where, f"unknown value type {kind!r}")

    def _dict(self, items: Any, where: str) -> dict[Any, Any]:
        if not isinstance(items, list):
            raise self.error(where, "bad dict")
        out = {}
        for pair in items:
            if not (isinstance(pair, list) and len(pair) == 2):
                raise self.error(where, "bad dict item")
            key, raw = pair
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise self.error(where, f"bad dict key {key!r}")
            val = self.decode(raw, f"{where}[{key!r}]")
            if key == "trust_remote_code" and val:
                raise self.error(
                    f"{where}[{key!r}]",
                    "trust_remote_code=True would run the checkpoint's Python code",
                )
            out[key] = val
        return out

    def _str_array(self, value: dict[str, Any], where: str) -> np.ndarray:
        items, shape = value.get("items"), value.get("shape")
        if not (
            isinstance(items, list)
            and all(isinstance(v, str) for v in items)
            and isinstance(shape, list)
            and all(isinstance(n, int) and n >= 0 for n in shape)
            and math.prod(shape) == len(items)
        ):
            raise self.error(where, "bad string array")
        dtype = np.dtype(object) if value.get("dtype") == "object" else None
        if dtype is None:
            dtype = np.dtype(str(value.get("dtype")))
            if dtype.kind != "U":
                raise self.error(where, f"string array of dtype {dtype}")
        out = np.empty(len(items), dtype=dtype)
        out[:] = items
        return out.reshape(shape)

    def _estimator(self, node: dict[str, Any], where: str) -> Any:
        name = node.get("class")
        if name not in self.types:
            raise self.error(
                where,
                f"class {name!r} is not one of the types load_safe builds "
                f"({', '.join(self.types)})",
            )
        kind = self.types[name]
        cls = kind.load_class()
        where = f"{where}({kind.attr})"
        raw_params = node.get("params")
        if not isinstance(raw_params, dict):
            raise self.error(where, "missing parameters")
        allowed = {
            p.name
            for p in inspect.signature(cls).parameters.values()
            if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }
        unknown = set(raw_params) - allowed
        if unknown:
            raise self.error(where, f"unknown parameters {sorted(unknown)}")
        params = {k: self.decode(v, f"{where}.{k}") for k, v in raw_params.items()}
        if "dtype" in allowed and "dtype" not in params and params.get("torch_dtype") is not None:
            # written before torch_dtype became dtype: read as the new name
            params["dtype"] = params.pop("torch_dtype")
        try:
            est = cls(**params)
        except (TypeError, ValueError) as exc:
            raise self.error(where, f"the parameters are refused ({exc})") from None
        state = node["model_file"] if "model_file" in node else node.get("state", {})
        read = kind.read_state or _default_read_state
        read(est, state, self, where)
        return est

    def set_state(self, est: Any, state: Any, where: str) -> None:
        """Decode ``state`` (from :meth:`Writer.state`) onto ``est``."""
        if not isinstance(state, dict):
            raise self.error(where, "bad fitted state")
        allowed = set(est.get_params(deep=False))
        for key, raw in state.items():
            if not (isinstance(key, str) and key.isidentifier()) or key.startswith("__"):
                raise self.error(where, f"bad attribute name {key!r}")
            if key in allowed:
                raise self.error(where, f"attribute {key!r} shadows a parameter")
            vars(est)[key] = self.decode(raw, f"{where}.{key}")

    def member(self, file: Any, where: str) -> Path:
        """Path of a file of the directory named in the manifest (checked)."""
        if not isinstance(file, str) or "/" in file or "\\" in file or file.startswith("."):
            raise self.error(where, f"bad model file name {file!r}")
        path = self.root / file
        if not path.is_file():
            raise self.error(where, f"model file {file!r} is missing")
        return path
