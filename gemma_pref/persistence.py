# SPDX-License-Identifier: Apache-2.0
"""Save and load fitted estimators: joblib for trusted files, else a safe folder.

Neither format ever holds model weights: :class:`~gemma_pref.GemmaEmbedder`
keeps only its parameters (the checkpoint is reloaded from
``model_name_or_path`` at the next ``transform``), so a fitted preference
pipeline saves to the size of its classifier.

Which one to use
----------------
:func:`save` / :func:`load` (joblib, that is pickle)
    For your own files: checkpoints between runs, a Kaggle notebook loading the
    model it trained, the CLI. Any estimator works (custom classifiers,
    callable templates, ``FunctionTransformer``). The file records the
    versions of gemma-pref, scikit-learn and CatBoost, and :func:`load` warns
    (:class:`~gemma_pref.exceptions.VersionMismatchWarning`) when they differ.
    **Loading a pickle runs code chosen by whoever wrote the file: never load
    one you did not write or do not trust.** Plain ``joblib.dump`` /
    ``joblib.load`` of a pipeline keep working: :class:`~gemma_pref.GemmaEmbedder`
    stamps the gemma-pref version into the pickle, as scikit-learn does for
    its own estimators, and warns when unpickled under another version.
:func:`save_safe` / :func:`load_safe` (a directory, no pickle)
    For files that cross a trust boundary: a model downloaded from a
    colleague, a shared drive, a model registry. The directory holds
    ``manifest.json`` (classes, parameters, versions), ``arrays.npz``
    (numeric fitted arrays, read with ``allow_pickle=False``) and one
    CatBoost ``.cbm`` file per CatBoost model (CatBoost's own format).
    :func:`load_safe` never unpickles anything: it builds only the classes of
    :data:`SAFE_TYPES` with parameters decoded from JSON, and refuses
    anything else, including ``trust_remote_code`` in ``model_kwargs`` /
    ``tokenizer_kwargs``. The price: only those classes, and only JSON-able
    parameters (a string template, a tokenizer given as a path), can be saved.

Both formats are written to a temporary name and renamed into place, so an
interrupted save never leaves a truncated file under the final name.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from sklearn.linear_model import LogisticRegression
>>> from sklearn.pipeline import make_pipeline
>>> from sklearn.preprocessing import StandardScaler
>>> from gemma_pref import ArenaStructureFeatures, labels_from_winner
>>> from gemma_pref import load_arena_sample
>>> from gemma_pref.persistence import load, load_safe, save, save_safe
>>> df = load_arena_sample().head(60)
>>> model = make_pipeline(ArenaStructureFeatures(), StandardScaler(),
...                       LogisticRegression(C=0.1))
>>> model = model.fit(df, labels_from_winner(df))
>>> tmp = Path(tempfile.mkdtemp())
>>> same = load(save(model, tmp / "model.joblib")).predict_proba(df)
>>> safe = load_safe(save_safe(model, tmp / "model")).predict_proba(df)
>>> bool((same == model.predict_proba(df)).all()), bool((safe == same).all())
(True, True)
>>> sorted(p.name for p in (tmp / "model").iterdir())
['arrays.npz', 'manifest.json']
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import atomic_path
from ._version import __version__
from .exceptions import SafeFormatError, VersionMismatchWarning

__all__ = [
    "SAFE_TYPES",
    "environment_versions",
    "load",
    "load_safe",
    "save",
    "save_safe",
]

#: Classes that :func:`save_safe` writes and :func:`load_safe` builds, by the
#: name used in ``manifest.json``. Nothing else is ever constructed.
SAFE_TYPES: dict[str, tuple[str, str]] = {
    "gemma_pref.ArenaTextFormatter": ("gemma_pref.formatting", "ArenaTextFormatter"),
    "gemma_pref.GemmaEmbedder": ("gemma_pref.embedding", "GemmaEmbedder"),
    "gemma_pref.ArenaStructureFeatures": (
        "gemma_pref.features",
        "ArenaStructureFeatures",
    ),
    "gemma_pref.SwapABClassifier": ("gemma_pref.augmentation", "SwapABClassifier"),
    "gemma_pref.PairDifferenceClassifier": (
        "gemma_pref.pairwise",
        "PairDifferenceClassifier",
    ),
    "sklearn.pipeline.Pipeline": ("sklearn.pipeline", "Pipeline"),
    "sklearn.pipeline.FeatureUnion": ("sklearn.pipeline", "FeatureUnion"),
    "sklearn.preprocessing.StandardScaler": ("sklearn.preprocessing", "StandardScaler"),
    "sklearn.linear_model.LogisticRegression": (
        "sklearn.linear_model",
        "LogisticRegression",
    ),
    "catboost.CatBoostClassifier": ("catboost", "CatBoostClassifier"),
}

_JOBLIB_FORMAT = "gemma-pref-joblib"
_SAFE_FORMAT = "gemma-pref-safe"
_FORMAT_VERSION = 1
_MANIFEST = "manifest.json"
_ARRAYS = "arrays.npz"
#: Packages whose version is checked on load (others are recorded only).
_CHECKED = ("gemma_pref", "scikit-learn", "catboost")
_STAMP = "_gemma_pref_version"
_TORCH_DTYPES = ("float16", "bfloat16", "float32", "float64")


# ------------------------------------------------------------------ versions
def environment_versions() -> dict[str, str | None]:
    """Versions recorded in saved files: gemma-pref and the libraries it uses.

    Returns
    -------
    versions : dict
        ``gemma_pref``, ``scikit-learn``, ``catboost``, ``numpy``, ``joblib``,
        ``torch``, ``transformers`` (``None`` when not installed) and
        ``python``.

    Examples
    --------
    >>> from gemma_pref.persistence import environment_versions
    >>> from gemma_pref import __version__
    >>> environment_versions()["gemma_pref"] == __version__
    True
    """
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"gemma_pref": __version__}
    for name in (
        "scikit-learn",
        "catboost",
        "numpy",
        "joblib",
        "torch",
        "transformers",
    ):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    out["python"] = ".".join(map(str, sys.version_info[:3]))
    return out


def _warn_versions(saved: Any, what: str, stacklevel: int = 3) -> None:
    if not isinstance(saved, dict):
        saved = {}
    current = environment_versions()
    for name in _CHECKED:
        original = saved.get(name, "unknown")
        now = current.get(name)
        if name == "catboost" and (original is None or now is None):
            continue  # saved without CatBoost, or CatBoost not needed here
        if original != now:
            warnings.warn(
                VersionMismatchWarning(
                    f"{what} was saved with {name} {original} and is loaded with "
                    f"{name} {now}. This might lead to breaking code or invalid "
                    f"results; refit it, or install {name}=={original}.",
                    package=name,
                    original_version=str(original),
                    current_version=str(now),
                ),
                stacklevel=stacklevel,
            )


def _stamp_state(state: dict[str, Any]) -> dict[str, Any]:
    """Add the gemma-pref version to an estimator's pickled state."""
    state = dict(state)
    state[_STAMP] = __version__
    return state


def _check_state(estimator: Any, state: dict[str, Any]) -> dict[str, Any]:
    """Pop the version stamp from a pickled state; warn when it differs.

    The counterpart of :func:`_stamp_state`, for ``__setstate__``, as
    scikit-learn does for its own estimators (``InconsistentVersionWarning``).
    """
    state = dict(state)
    original = state.pop(_STAMP, "unknown")
    if original != __version__:
        name = type(estimator).__name__
        warnings.warn(
            VersionMismatchWarning(
                f"Trying to unpickle estimator {name} from gemma_pref version "
                f"{original} when using version {__version__}. This might lead "
                "to breaking code or invalid results. Use at your own risk; "
                "refit it, or install the version that saved it.",
                package="gemma_pref",
                original_version=str(original),
                current_version=__version__,
                estimator_name=name,
            ),
            stacklevel=3,
        )
    return state


# -------------------------------------------------------------------- joblib
def save(estimator: Any, path: str | os.PathLike[str], *, compress: int = 3) -> Path:
    """Save an estimator with joblib, recording the library versions.

    Parameters
    ----------
    estimator : object
        Usually a fitted pipeline. Any picklable object works.
    path : str or os.PathLike
        Output file (conventionally ``*.joblib``). Replaced atomically if it
        exists.
    compress : int, default=3
        joblib compression level (0 to 9).

    Returns
    -------
    path : pathlib.Path
        The file written.

    See Also
    --------
    load : The counterpart.
    save_safe : A format that runs no pickle code on load.

    Notes
    -----
    The file is a joblib pickle of ``{"format": "gemma-pref-joblib",
    "versions": {...}, "estimator": estimator}``; ``joblib.load(path)
    ["estimator"]`` reads it without gemma-pref's version check. Loading it
    runs pickle code: load only files you trust.
    """
    import joblib

    path = Path(path)
    envelope = {
        "format": _JOBLIB_FORMAT,
        "format_version": _FORMAT_VERSION,
        "versions": environment_versions(),
        "estimator": estimator,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        joblib.dump(envelope, tmp, compress=compress)
    return path


def load(path: str | os.PathLike[str]) -> Any:
    """Load an estimator saved by :func:`save` (or a plain ``joblib.dump``).

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save` or by ``joblib.dump(estimator, path)``.

    Returns
    -------
    estimator : object
        The estimator, ready for ``predict_proba``; a
        :class:`~gemma_pref.GemmaEmbedder` reloads its checkpoint at the next
        ``transform``.

    Warns
    -----
    VersionMismatchWarning
        When gemma-pref, scikit-learn or CatBoost differ from the versions that
        saved the file (one warning per package).

    Notes
    -----
    This unpickles the file, which runs code chosen by whoever wrote it: load
    only files you trust. Use :func:`load_safe` for the others.
    """
    import joblib

    path = Path(path)
    if path.is_dir():
        raise ValueError(
            f"{str(path)!r} is a directory; gemma_pref.load reads a joblib file "
            "written by gemma_pref.save (use gemma_pref.load_safe for a "
            "directory written by gemma_pref.save_safe)."
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        obj = joblib.load(path)
    wrapped = isinstance(obj, dict) and obj.get("format") == _JOBLIB_FORMAT
    for w in caught:
        # the envelope's check below reports gemma-pref once for the whole file
        if (
            wrapped
            and isinstance(w.message, VersionMismatchWarning)
            and w.message.package == "gemma_pref"
        ):
            continue
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if not wrapped:
        return obj
    _warn_versions(obj.get("versions"), f"{str(path)!r}")
    return obj["estimator"]


# ---------------------------------------------------------------- safe format
def save_safe(estimator: Any, path: str | os.PathLike[str]) -> Path:
    """Save an estimator to a directory that loads without running pickle code.

    Parameters
    ----------
    estimator : estimator object
        Built from the classes of :data:`SAFE_TYPES` (for example
        ``make_preference_pipeline(...)`` after ``fit``, or a pipeline of
        ``ArenaStructureFeatures``, ``StandardScaler`` and
        ``LogisticRegression``), fitted or not.
    path : str or os.PathLike
        Output directory. If it exists it must be an earlier ``save_safe``
        output, which is replaced; any other existing path is refused.

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
        When ``path`` exists and is not a ``save_safe`` directory.

    See Also
    --------
    load_safe : The counterpart.
    save : joblib, for any estimator, for trusted files.
    """
    path = Path(path)
    if path.exists() and not _is_safe_dir(path):
        raise FileExistsError(
            f"{str(path)!r} exists and is not a directory written by "
            "gemma_pref.save_safe; choose a new path (it is never overwritten)."
        )
    writer = _Writer()
    tree = writer.encode(estimator, "estimator")
    manifest = {
        "format": _SAFE_FORMAT,
        "format_version": _FORMAT_VERSION,
        "versions": environment_versions(),
        "estimator": tree,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(
        tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    )
    try:
        (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=1, allow_nan=False))
        if writer.arrays:
            np.savez(tmp / _ARRAYS, allow_pickle=False, **writer.arrays)
        for name, model in writer.catboost_models.items():
            model.save_model(str(tmp / name), format="cbm")
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
    if manifest.get("format_version") != _FORMAT_VERSION:
        raise SafeFormatError(
            f"{str(path)!r} has save_safe format version "
            f"{manifest.get('format_version')!r}; this gemma-pref reads version "
            f"{_FORMAT_VERSION}."
        )
    _warn_versions(manifest.get("versions"), f"{str(path)!r}")
    reader = _Reader(path)
    try:
        return reader.decode(manifest.get("estimator"), "estimator")
    finally:
        reader.close()


# ------------------------------------------------------------------ encoding
def _is_safe_dir(path: Path) -> bool:
    try:
        manifest = json.loads((path / _MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == _SAFE_FORMAT


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _type_name(cls: type) -> str | None:
    """The SAFE_TYPES name of exactly ``cls`` (not a subclass), or None."""
    for name, (module, attr) in SAFE_TYPES.items():
        if cls.__name__ != attr or not cls.__module__.startswith(module.split(".")[0]):
            continue
        try:
            if getattr(importlib.import_module(module), attr) is cls:
                return name
        except ImportError:
            continue
    return None


def _is_estimator(value: Any) -> bool:
    return hasattr(value, "get_params") and hasattr(value, "fit")


_SKIPPED_STATE = ("_sklearn_version", _STAMP)


class _Writer:
    """Encode an estimator tree to JSON; collect arrays and CatBoost models."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self.catboost_models: dict[str, Any] = {}

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
                    raise self._error(
                        f"{where} key", k, "a dict key that is not str or int"
                    )
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
            "params": {
                k: self.encode(v, f"{where}.{k}") for k, v in sorted(params.items())
            },
        }
        if name == "catboost.CatBoostClassifier":
            if est.is_fitted():
                file = f"catboost-{len(self.catboost_models)}.cbm"
                self.catboost_models[file] = est
                node["model_file"] = file
            return node
        state = {
            k: v
            for k, v in vars(est).items()
            if k not in params
            and k not in _SKIPPED_STATE
            and not k.startswith("_lazy_")
        }
        node["state"] = {
            k: self.encode(v, f"{where}.{k}") for k, v in sorted(state.items())
        }
        return node

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
        module, attr = SAFE_TYPES[name]
        cls = getattr(importlib.import_module(module), attr)
        where = f"{where}({attr})"
        raw_params = node.get("params")
        if not isinstance(raw_params, dict):
            raise self._error(where, "missing parameters")
        allowed = {
            p.name
            for p in inspect.signature(cls.__init__).parameters.values()
            if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }
        unknown = set(raw_params) - allowed
        if unknown:
            raise self._error(where, f"unknown parameters {sorted(unknown)}")
        params = {k: self.decode(v, f"{where}.{k}") for k, v in raw_params.items()}
        try:
            est = cls(**params)
        except (TypeError, ValueError) as exc:
            raise self._error(where, f"the parameters are refused ({exc})") from None
        if name == "catboost.CatBoostClassifier":
            file = node.get("model_file")
            if file is not None:
                path = self._member(file, where)
                est.load_model(str(path), format="cbm")
            return est
        state = node.get("state", {})
        if not isinstance(state, dict):
            raise self._error(where, "bad fitted state")
        for key, raw in state.items():
            if not (isinstance(key, str) and key.isidentifier()) or key.startswith(
                "__"
            ):
                raise self._error(where, f"bad attribute name {key!r}")
            if key in allowed:
                raise self._error(where, f"attribute {key!r} shadows a parameter")
            vars(est)[key] = self.decode(raw, f"{where}.{key}")
        return est

    def _member(self, file: Any, where: str) -> Path:
        if (
            not isinstance(file, str)
            or "/" in file
            or "\\" in file
            or file.startswith(".")
        ):
            raise self._error(where, f"bad model file name {file!r}")
        path = self.root / file
        if not path.is_file():
            raise self._error(where, f"model file {file!r} is missing")
        return path
