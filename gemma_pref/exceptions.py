# SPDX-License-Identifier: Apache-2.0
"""Exceptions raised by gemma-pref.

Hierarchy::

    Exception
    ├── ValueError
    │   ├── ArenaFormatError          a cell is not a JSON list of strings
    │   └── SafeFormatError           save_safe/load_safe cannot or may not
    ├── RuntimeError
    │   └── DeviceWorkerError         the forward pass failed on one device
    └── OSError
        └── ModelNotFoundError        the model path is not a local checkpoint

    Warning
    └── UserWarning
        ├── MissingCellsWarning       text cells missing in the input, read as empty
        ├── TruncationWarning         truncation left a row's two texts identical
        └── VersionMismatchWarning    unpickled under other package versions
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CacheIntegrityWarning",
    "CacheWriteWarning",
    "ArenaFormatError",
    "DeviceWorkerError",
    "MissingCellsWarning",
    "ModelNotFoundError",
    "SafeFormatError",
    "TruncationWarning",
    "VersionMismatchWarning",
]


class ArenaFormatError(ValueError):
    """Raised when an arena cell is not a JSON list of strings (or nulls).

    Attributes
    ----------
    column : str
        The column of the bad cell.
    row : object
        The index label of the bad row.
    """

    def __init__(self, message: str, *, column: str, row: Any) -> None:
        super().__init__(message)
        self.column = column
        self.row = row

    def __reduce__(self) -> tuple[Any, ...]:
        # keyword-only attributes: pickle (Ray, multiprocessing) rebuilds them
        return (_rebuild, (type(self), str(self), {"column": self.column, "row": self.row}))


class CacheIntegrityWarning(UserWarning):
    """Issued when an on-disk cache entry is truncated or corrupt (it is recomputed)."""


class CacheWriteWarning(UserWarning):
    """Issued when an on-disk cache entry cannot be written (the vectors are kept)."""


class DeviceWorkerError(RuntimeError):
    """Raised in the caller when embedding failed on one device.

    The original exception is chained as ``__cause__``.

    Attributes
    ----------
    device : str
        The device whose worker failed, e.g. ``"cuda:1"``.
    """

    def __init__(self, message: str, *, device: str) -> None:
        super().__init__(message)
        self.device = device

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), str(self), {"device": self.device}))


class ModelNotFoundError(OSError):
    """Raised when ``model_name_or_path`` is not a loadable local checkpoint.

    ``model_name_or_path`` is a local checkpoint directory, or a Hugging Face
    Hub name found in the local cache or downloaded into it (not with
    ``HF_HUB_OFFLINE=1``, nor without the network or access to the model).
    """


class SafeFormatError(ValueError):
    """Raised by :func:`~gemma_pref.persistence.save_safe` and
    :func:`~gemma_pref.persistence.load_safe`.

    At save time: a part of the estimator cannot be written without pickle (a
    type outside :data:`~gemma_pref.persistence.safe.SAFE_TYPES`, a callable
    parameter, a loaded tokenizer object, ...). At load time: the path is not
    a model written by ``save_safe``, or it names a type or a value that the
    safe loader does not construct. The message names the part (for example
    ``pipeline.steps['formatter'].template``) and what was found.
    """


class MissingCellsWarning(UserWarning):
    """Issued when text cells (a prompt or an answer) are missing in the input.

    A missing cell (an empty CSV field, ``None`` / ``NaN`` in a DataFrame,
    Parquet or JSON Lines file) has no turns: it is read as the empty text.
    The message counts the missing cells of each column and names the first
    rows (and their ``id``).

    Attributes
    ----------
    counts : dict of str to int
        Missing cells per column.
    rows : list
        Index labels of the first rows with a missing cell.
    """

    def __init__(self, message: str, *, counts: dict[str, int], rows: list[Any]) -> None:
        super().__init__(message)
        self.counts = counts
        self.rows = rows


class TruncationWarning(UserWarning):
    """Issued when right truncation leaves a row's two texts without their answers.

    :class:`~gemma_pref.GemmaEmbedder` keeps the first ``max_length`` tokens
    of each text. With two texts per row (``ArenaTextFormatter(layout="pair")``:
    the prompt with answer A, the prompt with answer B), a long prompt can
    fill all of them: the kept tokens of a text no longer reach past the
    prefix it shares with the other text, so its answer lost all its tokens,
    and the two texts become the same tokens although they differ. The model
    then sees one text twice and the row's vectors cannot tell the answers
    apart. The message counts such rows, names the first ones and the
    remedies: the token budget (``make_recipe_formatter(budget=True)``, the
    command line's ``--budget``, ``ArenaTextFormatter(max_tokens=...,
    tokenizer=...)``), which gives the prompt and each answer their shares of
    the tokens, or a larger ``max_length``.

    Attributes
    ----------
    counts : dict of str to int
        Rows per case: ``"identical"`` (both texts keep the same tokens),
        ``"answer_a_lost"`` and ``"answer_b_lost"`` (that text kept only the
        part it shares with the other).
    rows : list
        Labels of the first rows concerned (the input's index, else positions).
    n_rows : int
        Rows in the input.
    max_length : int
        Tokens kept per text.
    """

    def __init__(
        self,
        message: str,
        *,
        counts: dict[str, int],
        rows: list[Any],
        n_rows: int,
        max_length: int,
    ) -> None:
        super().__init__(message)
        self.counts = counts
        self.rows = rows
        self.n_rows = n_rows
        self.max_length = max_length


class VersionMismatchWarning(UserWarning):
    """Issued when an estimator is loaded under other package versions.

    Raised on unpickling a gemma-pref estimator stamped by another gemma-pref
    version (``joblib.load`` or ``pickle.load``), and by
    :func:`~gemma_pref.persistence.load` / :func:`~gemma_pref.persistence.load_safe`
    when gemma-pref, scikit-learn or CatBoost differ from the versions that
    saved the file. Predictions may differ or fail; refit, or install the
    versions named in the message.

    Attributes
    ----------
    package : str
        The package whose version differs, e.g. ``"gemma_pref"``.
    original_version : str
        The version that saved the estimator (``"unknown"`` if not recorded).
    current_version : str
        The version installed now.
    estimator_name : str or None
        The class of the unpickled estimator, when one is concerned.
    """

    def __init__(
        self,
        message: str,
        *,
        package: str,
        original_version: str,
        current_version: str,
        estimator_name: str | None = None,
    ) -> None:
        super().__init__(message)
        self.package = package
        self.original_version = original_version
        self.current_version = current_version
        self.estimator_name = estimator_name


def _rebuild(cls: type, message: str, attributes: dict[str, Any]) -> BaseException:
    """Unpickle an exception whose constructor takes keyword-only attributes."""
    return cls(message, **attributes)
