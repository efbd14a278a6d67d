# SPDX-License-Identifier: Apache-2.0
"""The safe format: save and load fitted estimators without pickle.

:func:`save_safe` writes a directory that :func:`load_safe` reads without
running any pickle code, for files that cross a trust boundary (a model from a
colleague, a shared drive, a model registry). The directory holds
``manifest.json`` (classes, parameters, versions), ``arrays.npz`` (numeric
fitted arrays, read with ``allow_pickle=False``) and the files that some types
write in their own format (a CatBoost model's ``.cbm``). :func:`load_safe`
builds only the classes registered in :data:`SAFE_TYPES`, with parameters
decoded from JSON, and refuses anything else, including
``trust_remote_code`` in ``model_kwargs`` / ``tokenizer_kwargs``.

Each registered type is a :class:`SafeType`: where the class lives and,
when its fitted state is not plain JSON values and numeric arrays, a pair of
hooks that write and read that state (CatBoost's own model file, for
example). For joblib files you trust, see :mod:`gemma_pref.persistence`.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._ownership import foreign_files, refuse_replacing
from .._versioning import STAMP, versioned, warn_versions
from ..exceptions import SafeFormatError

__all__ = ["SAFE_TYPES", "SafeType", "load_safe", "save_safe"]

_SAFE_FORMAT = "gemma-pref-safe"
_FORMAT_VERSION = 3
#: Versions :func:`load_safe` reads (1 stored a CatBoost file name as
#: ``model_file``; 3 lists the directory's files in ``files``).
_READABLE_VERSIONS = (1, 2, 3)
_MANIFEST = "manifest.json"
_ARRAYS = "arrays.npz"
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
    write_state: Callable[[Any, _Writer, str], Any] | None = None
    read_state: Callable[[Any, Any, _Reader, str], None] | None = None

    def load_class(self) -> type:
        """Import and return the class."""
        return getattr(importlib.import_module(self.module), self.attr)


# -------------------------------------------------------------------- hooks
def _default_write_state(est: Any, writer: _Writer, where: str) -> Any:
    return writer.state(est, where)


def _default_read_state(est: Any, state: Any, reader: _Reader, where: str) -> None:
    reader.set_state(est, state, where)


def _write_finetuned(est: Any, writer: _Writer, where: str) -> Any:
    # the adapter (safetensors bytes) goes to a file of its own
    state = writer.state(est, where, exclude=("adapter_weights_",))
    blob = vars(est).get("adapter_weights_")
    if blob is not None:
        state["adapter_weights_"] = writer.add_file(
            "adapter", ".safetensors", lambda path: path.write_bytes(blob)
        )
    return state


def _read_finetuned(est: Any, state: Any, reader: _Reader, where: str) -> None:
    if not isinstance(state, dict):
        raise reader._error(where, "bad fitted state")
    state = dict(state)
    file = state.pop("adapter_weights_", None)
    reader.set_state(est, state, where)
    if file is not None:
        vars(est)["adapter_weights_"] = reader.member(file, where).read_bytes()


# ------------------------------------------------------------------ CatBoost
def _write_catboost(est: Any, writer: _Writer, where: str) -> Any:
    if not est.is_fitted():
        return None
    return writer.add_file("catboost", ".cbm", lambda path: est.save_model(str(path), format="cbm"))


def _read_catboost(est: Any, file: Any, reader: _Reader, where: str) -> None:
    if file is not None:
        est.load_model(str(reader.member(file, where)), format="cbm")


def _read_auto_catboost(est: Any, file: Any, reader: _Reader, where: str) -> None:
    chosen = "task_type" in est.get_params()
    _read_catboost(est, file, reader, where)
    if not chosen:  # the device is chosen at each fit, not kept as a parameter
        est._init_params.pop("task_type", None)


#: Classes that :func:`save_safe` writes and :func:`load_safe` builds, by the
#: name used in ``manifest.json``. Nothing else is ever constructed.
SAFE_TYPES: dict[str, SafeType] = {
    "gemma_pref.ArenaTextFormatter": SafeType("gemma_pref.text.formatting", "ArenaTextFormatter"),
    "gemma_pref.GemmaEmbedder": SafeType("gemma_pref.embedding", "GemmaEmbedder"),
    "gemma_pref.ArenaStructureFeatures": SafeType(
        "gemma_pref.text.features", "ArenaStructureFeatures"
    ),
    "gemma_pref.SwapABClassifier": SafeType("gemma_pref.models.augmentation", "SwapABClassifier"),
    "gemma_pref.PairDifferenceClassifier": SafeType(
        "gemma_pref.models.pairwise", "PairDifferenceClassifier"
    ),
    "gemma_pref.PreferenceBlendClassifier": SafeType(
        "gemma_pref.models.blend", "PreferenceBlendClassifier"
    ),
    "gemma_pref.GemmaPreferenceClassifier": SafeType(
        "gemma_pref.models.finetune",
        "GemmaPreferenceClassifier",
        _write_finetuned,
        _read_finetuned,
    ),
    "gemma_pref.AutoDeviceCatBoostClassifier": SafeType(
        "gemma_pref.models._catboost",
        "AutoDeviceCatBoostClassifier",
        _write_catboost,
        _read_auto_catboost,
    ),
    "sklearn.pipeline.Pipeline": SafeType("sklearn.pipeline", "Pipeline"),
    "gemma_pref.PromptGroupedPipeline": SafeType("gemma_pref.pipeline", "PromptGroupedPipeline"),
    "sklearn.pipeline.FeatureUnion": SafeType("sklearn.pipeline", "FeatureUnion"),
    "sklearn.preprocessing.StandardScaler": SafeType("sklearn.preprocessing", "StandardScaler"),
    "sklearn.linear_model.LogisticRegression": SafeType(
        "sklearn.linear_model", "LogisticRegression"
    ),
    "catboost.CatBoostClassifier": SafeType(
        "catboost", "CatBoostClassifier", _write_catboost, _read_catboost
    ),
}


def save_safe(estimator: Any, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Save an estimator to a directory that loads without running pickle code.

    Parameters
    ----------
    estimator : estimator object
        Built from the classes of :data:`SAFE_TYPES` (for example
        ``make_preference_pipeline(...)`` after ``fit``, or a pipeline of
        ``ArenaStructureFeatures``, ``StandardScaler`` and
        ``LogisticRegression``), fitted or not.
    path : str or os.PathLike
        Output directory, written whole under a temporary name and renamed.
    overwrite : bool, default=False
        Replace an existing directory when it is an earlier ``save_safe``
        output holding nothing but the files its manifest lists; a directory
        with anything else in it (a file of yours) or any other path is never
        replaced, as :func:`~gemma_pref.persistence.save` never replaces a
        file it did not write.

    Returns
    -------
    path : pathlib.Path
        The directory written.

    Raises
    ------
    SafeFormatError
        Naming the part that cannot be written without pickle (a class outside
        :data:`SAFE_TYPES`, a callable template, a loaded tokenizer object, a
        parameter that is not JSON-able), with the suggestion to use
        :func:`save`.
    FileExistsError
        When ``path`` exists and ``overwrite`` is False, or it is not a
        ``save_safe`` directory, or it holds files its manifest does not list
        (naming them).

    See Also
    --------
    load_safe : The counterpart.
    save : joblib, for any estimator, for trusted files.
    """
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise FileExistsError(
                f"{str(path)!r} already exists; pass overwrite=True to replace it (only a "
                "directory gemma_pref.save_safe wrote is replaced)"
            )
        own = _own_files(path)
        if own is None:
            raise refuse_replacing(
                path, "a directory written by gemma_pref.save_safe", "no save_safe manifest"
            )
        extra = foreign_files(path, own)
        if extra:
            raise refuse_replacing(
                path,
                "only what gemma_pref.save_safe wrote",
                f"it also holds {extra[:5]}{' ...' if len(extra) > 5 else ''}, which "
                "would be deleted",
            )
    writer = _Writer()
    encoded = writer.encode(estimator, "estimator")
    files = sorted([_MANIFEST, *([_ARRAYS] if writer.arrays else []), *writer.files])
    manifest = versioned(_SAFE_FORMAT, _FORMAT_VERSION, estimator=encoded, files=files)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=1, allow_nan=False))
        if writer.arrays:
            np.savez(tmp / _ARRAYS, allow_pickle=False, **writer.arrays)
        for name, save in writer.files.items():
            save(tmp / name)
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old."))
            os.replace(path, old / "model")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def load_safe(path: str | os.PathLike[str]) -> Any:
    """Load a directory written by :func:`save_safe`, running no pickle code.

    Parameters
    ----------
    path : str or os.PathLike
        A directory written by :func:`save_safe`.

    Returns
    -------
    estimator : estimator object
        Equal to the saved one: same parameters, same fitted state, identical
        ``predict_proba``.

    Raises
    ------
    SafeFormatError
        When ``path`` is not a ``save_safe`` directory (a joblib or pickle file
        is refused, never opened as a pickle), or names a class outside
        :data:`SAFE_TYPES`, a value the format does not define, an array that
        needs pickle, or ``trust_remote_code``.

    Warns
    -----
    VersionMismatchWarning
        When gemma-pref, scikit-learn or CatBoost differ from the versions that
        saved it.

    See Also
    --------
    save_safe : The counterpart.
    load : joblib files you trust.

    Notes
    -----
    Nothing in the directory is unpickled: ``manifest.json`` is JSON,
    ``arrays.npz`` is read with ``allow_pickle=False``, CatBoost models are
    read by CatBoost's own ``load_model``. A
    :class:`~gemma_pref.GemmaEmbedder` still loads its checkpoint from
    ``model_name_or_path`` at ``transform``, through transformers with
    ``local_files_only=True``; prefer safetensors checkpoints.

    A CatBoost model reports the parameters stored in its ``.cbm`` file, as
    after ``CatBoostClassifier().load_model(...)`` (for example
    ``verbose=0`` for ``verbose=False``).
    """
    path = Path(path)
    if not path.is_dir():
        raise SafeFormatError(
            f"{str(path)!r} is not a directory written by gemma_pref.save_safe "
            f"(expected a folder holding {_MANIFEST}); it is not opened. A file "
            "written by gemma_pref.save or joblib.dump is a pickle: load it with "
            "gemma_pref.load only if you trust its author."
        )
    manifest_path = path / _MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SafeFormatError(
            f"{str(manifest_path)!r} cannot be read as the manifest of a "
            f"gemma_pref.save_safe directory ({exc})."
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != _SAFE_FORMAT:
        raise SafeFormatError(
            f"{str(manifest_path)!r} is not a gemma_pref.save_safe manifest "
            f"(expected format {_SAFE_FORMAT!r})."
        )
    if manifest.get("format_version") not in _READABLE_VERSIONS:
        raise SafeFormatError(
            f"{str(path)!r} has save_safe format version "
            f"{manifest.get('format_version')!r}; this gemma-pref reads versions "
            f"{', '.join(map(str, _READABLE_VERSIONS))}."
        )
    warn_versions(manifest.get("versions"), f"{str(path)!r}")
    reader = _Reader(path)
    try:
        return reader.decode(manifest.get("estimator"), "estimator")
    finally:
        reader.close()


# ------------------------------------------------------------------ encoding
_MODEL_FILE = re.compile(r"(?:catboost|adapter)-\d+\.(?:cbm|safetensors)")


def _own_files(path: Path) -> set[str] | None:
    """The files a ``save_safe`` directory's manifest says it wrote, or
    ``None`` when ``path`` holds no ``save_safe`` manifest."""
    try:
        text = (path / _MANIFEST).read_text(encoding="utf-8")
        manifest = json.loads(text)
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != _SAFE_FORMAT:
        return None
    listed = manifest.get("files")
    if isinstance(listed, list) and all(isinstance(f, str) for f in listed):
        return set(listed)
    # versions 1 and 2 list nothing: the manifest, the arrays, the model files it names
    return {_MANIFEST, _ARRAYS, *_MODEL_FILE.findall(text)}


def _type_name(cls: type) -> str | None:
    """The SAFE_TYPES name of exactly ``cls`` (not a subclass), or None."""
    for name, kind in SAFE_TYPES.items():
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


class _Writer:
    """Encode an estimator tree to JSON; collect arrays and CatBoost models."""

    def __init__(self) -> None:
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
        name = _type_name(type(est))
        if name is None:
            raise SafeFormatError(
                f"{where}: {type(est).__module__}.{type(est).__qualname__} is not "
                f"one of the types save_safe writes ({', '.join(SAFE_TYPES)}); "
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
        kind = SAFE_TYPES[name]
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


class _Reader:
    """Decode a manifest tree; build only SAFE_TYPES; never unpickle."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._arrays: Any = None

    def close(self) -> None:
        if self._arrays is not None:
            self._arrays.close()

    def _error(self, where: str, what: str) -> SafeFormatError:
        return SafeFormatError(f"{str(self.root)!r}: {where}: {what}; refused.")

    def array(self, key: Any, where: str) -> np.ndarray:
        if self._arrays is None:
            file = self.root / _ARRAYS
            if not file.is_file():
                raise self._error(where, f"{_ARRAYS} is missing")
            self._arrays = np.load(file, allow_pickle=False)
        if not isinstance(key, str) or key not in self._arrays.files:
            raise self._error(where, f"no array {key!r} in {_ARRAYS}")
        try:
            return self._arrays[key]
        except ValueError as exc:  # an object array: needs pickle
            raise self._error(where, f"array {key!r} needs pickle ({exc})") from None

    def decode(self, value: Any, where: str) -> Any:
        if value is None or isinstance(value, (bool, str, int, float)):
            return value
        if not isinstance(value, dict):
            raise self._error(where, f"unexpected JSON {type(value).__name__}")
        kind = value.get("__type__")
        if kind == "float":
            text = value.get("value")
            if text not in ("nan", "inf", "-inf"):
                raise self._error(where, f"bad float {text!r}")
            return float(text)
        if kind in ("list", "tuple"):
            items = value.get("items")
            if not isinstance(items, list):
                raise self._error(where, f"bad {kind}")
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
                raise self._error(where, f"numpy scalar of dtype {dtype}")
            return dtype.type(self.decode(value.get("value"), where))
        if kind == "path":
            return Path(str(value.get("value")))
        if kind == "torch_dtype":
            name = value.get("value")
            if name not in _TORCH_DTYPES:
                raise self._error(where, f"torch dtype {name!r}")
            import torch

            return getattr(torch, name)
        if kind == "estimator":
            return self._estimator(value, where)
        raise self._error(where, f"unknown value type {kind!r}")

    def _dict(self, items: Any, where: str) -> dict[Any, Any]:
        if not isinstance(items, list):
            raise self._error(where, "bad dict")
        out = {}
        for pair in items:
            if not (isinstance(pair, list) and len(pair) == 2):
                raise self._error(where, "bad dict item")
            key, raw = pair
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise self._error(where, f"bad dict key {key!r}")
            val = self.decode(raw, f"{where}[{key!r}]")
            if key == "trust_remote_code" and val:
                raise self._error(
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
            raise self._error(where, "bad string array")
        dtype = np.dtype(object) if value.get("dtype") == "object" else None
        if dtype is None:
            dtype = np.dtype(str(value.get("dtype")))
            if dtype.kind != "U":
                raise self._error(where, f"string array of dtype {dtype}")
        out = np.empty(len(items), dtype=dtype)
        out[:] = items
        return out.reshape(shape)

    def _estimator(self, node: dict[str, Any], where: str) -> Any:
        name = node.get("class")
        if name not in SAFE_TYPES:
            raise self._error(
                where,
                f"class {name!r} is not one of the types load_safe builds "
                f"({', '.join(SAFE_TYPES)})",
            )
        kind = SAFE_TYPES[name]
        cls = kind.load_class()
        where = f"{where}({kind.attr})"
        raw_params = node.get("params")
        if not isinstance(raw_params, dict):
            raise self._error(where, "missing parameters")
        allowed = {
            p.name
            for p in inspect.signature(cls).parameters.values()
            if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }
        unknown = set(raw_params) - allowed
        if unknown:
            raise self._error(where, f"unknown parameters {sorted(unknown)}")
        params = {k: self.decode(v, f"{where}.{k}") for k, v in raw_params.items()}
        if "dtype" in allowed and "dtype" not in params and params.get("torch_dtype") is not None:
            # written before torch_dtype became dtype: read as the new name
            params["dtype"] = params.pop("torch_dtype")
        try:
            est = cls(**params)
        except (TypeError, ValueError) as exc:
            raise self._error(where, f"the parameters are refused ({exc})") from None
        state = node["model_file"] if "model_file" in node else node.get("state", {})
        read = kind.read_state or _default_read_state
        read(est, state, self, where)
        return est

    def set_state(self, est: Any, state: Any, where: str) -> None:
        """Decode ``state`` (from :meth:`_Writer.state`) onto ``est``."""
        if not isinstance(state, dict):
            raise self._error(where, "bad fitted state")
        allowed = set(est.get_params(deep=False))
        for key, raw in state.items():
            if not (isinstance(key, str) and key.isidentifier()) or key.startswith("__"):
                raise self._error(where, f"bad attribute name {key!r}")
            if key in allowed:
                raise self._error(where, f"attribute {key!r} shadows a parameter")
            vars(est)[key] = self.decode(raw, f"{where}.{key}")

    def member(self, file: Any, where: str) -> Path:
        """Path of a file of the directory named in the manifest (checked)."""
        if not isinstance(file, str) or "/" in file or "\\" in file or file.startswith("."):
            raise self._error(where, f"bad model file name {file!r}")
        path = self.root / file
        if not path.is_file():
            raise self._error(where, f"model file {file!r} is missing")
        return path
