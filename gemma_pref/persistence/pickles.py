# SPDX-License-Identifier: Apache-2.0
"""Save and load fitted estimators: joblib for trusted files, else a safe folder.

This module holds the joblib format (:func:`save`, :func:`load`); the safe
format is :mod:`gemma_pref.persistence.safe` (:func:`save_safe`,
:func:`load_safe`); all four are imported from :mod:`gemma_pref.persistence`.

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
    (numeric fitted arrays, read with ``allow_pickle=False``) and the files
    some types write in their own format (a CatBoost ``.cbm`` per CatBoost
    model).
    :func:`load_safe` never unpickles anything: it builds only the classes of
    :data:`SAFE_TYPES` with parameters decoded from JSON, and refuses
    anything else, including ``trust_remote_code`` in ``model_kwargs`` /
    ``tokenizer_kwargs``. The price: only those classes, and only JSON-able
    parameters (a string template, a tokenizer given as a path), can be saved.

Both formats are written to a temporary name and renamed into place, so an
interrupted save never leaves a truncated file under the final name, and both
follow one rule for an existing path: refused unless ``overwrite=True``, and
even then replaced only when it is the library's own output of that format (a
joblib file with gemma-pref's envelope; a directory holding nothing but the
files its ``save_safe`` manifest lists). A user's file, or a file a user put in
a ``save_safe`` folder, is never replaced nor deleted.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from sklearn.linear_model import LogisticRegression
>>> from sklearn.pipeline import make_pipeline
>>> from sklearn.preprocessing import StandardScaler
>>> from gemma_pref import ArenaStructureFeatures
>>> from gemma_pref.data import labels_from_winner
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

import os
import re
import warnings
from pathlib import Path
from typing import Any

from .._atomic import atomic_path
from .._ownership import JOBLIB_FORMAT, is_own_joblib, joblib_writer_version, refuse_replacing
from .._version import __version__
from .._versioning import versioned, warn_versions
from ..exceptions import VersionMismatchWarning

__all__ = ["load", "save"]

_JOBLIB_FORMAT = JOBLIB_FORMAT
_FORMAT_VERSION = 1


# -------------------------------------------------------------------- joblib
def save(
    estimator: Any, path: str | os.PathLike[str], *, compress: int = 3, overwrite: bool = False
) -> Path:
    """Save an estimator with joblib, recording the library versions.

    Parameters
    ----------
    estimator : object
        Usually a fitted pipeline. Any picklable object works.
    path : str or os.PathLike
        Output file (conventionally ``*.joblib``).
    compress : int, default=3
        joblib compression level (0 to 9).
    overwrite : bool, default=False
        Replace an existing file, atomically, when it is one :func:`save`
        wrote (its envelope is read without unpickling it). Any other file is
        never replaced, as :func:`save_safe` never replaces what it did not
        write.

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    FileExistsError
        When ``path`` exists and ``overwrite`` is False, or it is not a file
        :func:`save` wrote.

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
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise FileExistsError(
                f"{str(path)!r} already exists; pass overwrite=True to replace it (only a "
                "file gemma_pref.save wrote is replaced)"
            )
        if not is_own_joblib(path):
            raise refuse_replacing(
                path, "a file written by gemma_pref.save", "no gemma-pref envelope"
            )
    envelope = versioned(_JOBLIB_FORMAT, _FORMAT_VERSION, estimator=estimator)
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
        try:
            obj = joblib.load(path)
        except (ImportError, AttributeError) as exc:
            missing = _missing_gemma_pref_name(exc)
            if missing is None:
                raise
            raise type(exc)(_moved_message(path, missing)) from exc
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
    warn_versions(obj.get("versions"), f"{str(path)!r}")
    return obj["estimator"]


# ------------------------------------------------- files of other versions
def _missing_gemma_pref_name(exc: BaseException) -> str | None:
    """The gemma_pref module or name an unpickling error could not find, if any."""
    name = getattr(exc, "name", None)
    if isinstance(exc, ModuleNotFoundError) and name and name.startswith("gemma_pref."):
        return str(name)
    text = str(exc)
    match = re.search(r"attribute '([\w.]+)' on <module '(gemma_pref[\w.]*)'", text)
    if match:
        return f"{match.group(2)}.{match.group(1)}"
    match = re.search(r"module '(gemma_pref[\w.]*)' has no attribute '([\w.]+)'", text)
    if match:
        return f"{match.group(1)}.{match.group(2)}"
    return None


def _moved_message(path: Path, missing: str) -> str:
    writer = joblib_writer_version(path)
    written_by = (
        f"was written by gemma-pref {writer}"
        if writer
        else "was written by another gemma-pref version (the file does not say which)"
    )
    install = f"pip install 'gemma-pref=={writer}'" if writer else "the version that wrote it"
    return (
        f"{str(path)!r} {written_by} and names {missing}, which gemma-pref {__version__} "
        f"does not have. Load it with that version ({install}) and either save it with "
        "gemma_pref.save_safe there (a folder this version reads, for the types save_safe "
        "writes) or refit the model with this version."
    )
