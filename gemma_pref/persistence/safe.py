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

The registry lives in ``_safe_types``, the encoding of values and
:class:`SafeType` in ``_safe_codec``; both names are importable from here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .._ownership import foreign_files, refuse_replacing
from .._versioning import versioned, warn_versions
from ..exceptions import SafeFormatError
from ._safe_codec import ARRAYS, Reader, Writer
from ._safe_codec import SafeType as SafeType
from ._safe_types import SAFE_TYPES

__all__ = ["load_safe", "save_safe"]

_SAFE_FORMAT = "gemma-pref-safe"
_FORMAT_VERSION = 3
#: Versions :func:`load_safe` reads (1 stored a CatBoost file name as
#: ``model_file``; 3 lists the directory's files in ``files``).
_READABLE_VERSIONS = (1, 2, 3)
_MANIFEST = "manifest.json"


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
    writer = Writer(SAFE_TYPES)
    encoded = writer.encode(estimator, "estimator")
    files = sorted([_MANIFEST, *([ARRAYS] if writer.arrays else []), *writer.files])
    manifest = versioned(_SAFE_FORMAT, _FORMAT_VERSION, estimator=encoded, files=files)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=1, allow_nan=False))
        if writer.arrays:
            np.savez(tmp / ARRAYS, allow_pickle=False, **writer.arrays)
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
    reader = Reader(path, SAFE_TYPES)
    try:
        return reader.decode(manifest.get("estimator"), "estimator")
    finally:
        reader.close()


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
    return {_MANIFEST, ARRAYS, *_MODEL_FILE.findall(text)}
