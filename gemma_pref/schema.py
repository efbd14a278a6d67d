# SPDX-License-Identifier: Apache-2.0
"""The arena data schema: columns, labels, cells and their checks (no torch).

Everything that knows what a Kaggle "LMSYS - Chatbot Arena" row looks like
lives here: the column names, the labels and how swapping the answers maps
them, how a cell (a JSON list of turns, or a plain string: one turn) is
parsed and cleaned, and the checks
of a frame of rows and of a label vector. Every other module imports these
names from here.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .exceptions import ArenaFormatError

__all__ = [
    "ARENA_COLUMNS",
    "CLASS_NAMES",
    "SWAPPED_LABEL",
    "SWAP_COLUMN_PAIRS",
    "WINNER_COLUMNS",
    "check_arena_frame",
    "check_labels",
    "check_texts",
    "clean_text",
    "excerpt",
    "looks_like_json_list",
    "parse_turns",
    "swap_labels",
]

#: The three text columns of an arena row, in template order.
ARENA_COLUMNS: tuple[str, str, str] = ("prompt", "response_a", "response_b")
#: The one-hot label columns, in class order 0, 1, 2.
WINNER_COLUMNS: tuple[str, str, str] = ("winner_model_a", "winner_model_b", "winner_tie")
#: Class names for y = 0, 1, 2.
CLASS_NAMES: tuple[str, str, str] = ("model_a", "model_b", "tie")
#: Label of the swapped row for labels 0 (model_a wins), 1 (model_b wins), 2 (tie).
SWAPPED_LABEL: Mapping[int, int] = {0: 1, 1: 0, 2: 2}
#: Column pairs that exchange when the two answers of a row are swapped.
SWAP_COLUMN_PAIRS: tuple[tuple[str, str], ...] = (
    ("response_a", "response_b"),
    ("model_a", "model_b"),
    ("winner_model_a", "winner_model_b"),
)

_SURROGATE = re.compile("[\ud800-\udfff]")
_EXCERPT_CHARS = 60


def excerpt(value: Any, limit: int = _EXCERPT_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages.

    Examples
    --------
    >>> excerpt("x" * 100, limit=10)
    "'xxxxxx..."
    """
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def clean_text(text: str) -> str:
    """Replace lone UTF-16 surrogates by U+FFFD.

    JSON allows lone surrogates (``"\\ud83d"``); they cannot be encoded as
    UTF-8 and would crash a tokenizer later, far from the row that caused it.
    The formatter cleans every turn and the engine every text with this.

    Examples
    --------
    >>> clean_text("ok \\ud83d") == "ok \\ufffd"
    True
    """
    if _SURROGATE.search(text):
        return _SURROGATE.sub("\ufffd", text)
    return text


#: A string cell is read as a JSON list of turns when it starts like one, ``[``
#: followed by ``"`` or ``null``, or is the empty list ``[]`` (JSON whitespace
#: allowed around the brackets). Real answers start with ``"[] "`` too.
JSON_LIST_START = re.compile(r"[ \t\n\r]*\[[ \t\n\r]*(?:\"|null\b|\][ \t\n\r]*\Z)")


def looks_like_json_list(cell: Any) -> bool:
    """Whether a string cell is read as a JSON list of turns (see :func:`parse_turns`).

    Examples
    --------
    >>> looks_like_json_list('["Hi", null]'), looks_like_json_list("[citation needed]")
    (True, False)
    """
    return isinstance(cell, str) and JSON_LIST_START.match(cell) is not None


def parse_turns(cell: Any, *, column: str = "cell", row: Any = None) -> list[str]:
    """Parse one arena cell into a list of turn strings.

    Two kinds of cells hold text: the JSON lists of the Kaggle LMSYS files
    (``'["What is 2+2?", "And 3+3?"]'``, one item per turn) and plain strings
    (``"What is 2+2?"``, one turn: the WSDM Cup files and most other data).
    The rule that tells them apart: a string that starts like a JSON list of
    strings, ``[`` then ``"`` or ``null`` (whitespace allowed), or that is
    ``[]``, is read as a JSON list and must be a valid one; every other
    string is one turn, verbatim. So ``'["a"]'`` is the one turn ``"a"``,
    while ``"[1, 2, 3]"``, ``"[citation needed]"``, ``"[] is empty"``,
    ``'{"a": 1}'`` and ``"12"`` are one turn each, as written. To keep a
    plain answer that starts like a JSON list as it is, read the data with
    ``read_preferences(..., format="wsdm")`` (or ``"chosen_rejected"``),
    which stores every cell as an explicit JSON list.

    Parameters
    ----------
    cell : str, list, tuple, None or float
        A JSON-encoded list such as ``'["hi", null]'``, a plain string (one
        turn), an already decoded list or tuple of strings, or a missing value
        (``None`` / ``NaN``).
    column : str, default="cell"
        Column name used in error messages.
    row : object, default=None
        Row label used in error messages.

    Returns
    -------
    turns : list of str
        One string per turn. A JSON ``null`` item becomes ``""``; a missing
        cell (``None``, ``NaN``, ``pd.NA``) becomes ``[]``; a plain string
        ``s`` becomes ``[s]`` (``""`` becomes ``[""]``). Lone UTF-16
        surrogates are replaced by U+FFFD.

    Raises
    ------
    ArenaFormatError
        (a ``ValueError``) when a cell that starts like a JSON list is not a
        JSON list of strings or nulls, or a cell is neither a string nor a
        list (a number, a mapping). The message names the column, the row and
        an excerpt of the cell.

    Examples
    --------
    >>> parse_turns('["Hello", null]')
    ['Hello', '']
    >>> parse_turns('["a\\\\"quoted\\\\" word"]')
    ['a"quoted" word']
    >>> parse_turns("Paris is the capital.")
    ['Paris is the capital.']
    >>> parse_turns("[1, 2, 3] is a list")
    ['[1, 2, 3] is a list']
    """
    if cell is None or cell is pd.NA or cell is pd.NaT:
        return []  # pd.NA: missing cells of nullable dtypes (dtype_backend=...)
    if isinstance(cell, (float, np.floating)) and math.isnan(cell):
        return []
    expected = f"{column} at row {row!r}: expected a JSON list of strings"
    if isinstance(cell, str):
        if not JSON_LIST_START.match(cell):
            return [clean_text(cell)]  # a plain string: one turn
        try:
            value = json.loads(cell)
        except (ValueError, RecursionError) as exc:
            reason = getattr(exc, "msg", None) or type(exc).__name__
            raise ArenaFormatError(
                f"{expected}, got {excerpt(cell)} ({reason}; a cell that starts with "
                "'[\"' or '[null' is read as JSON)",
                column=column,
                row=row,
            ) from None
    elif isinstance(cell, (list, tuple, np.ndarray)):
        value = list(cell)
    else:
        raise ArenaFormatError(
            f"{expected} or a plain string, got {type(cell).__name__} {excerpt(cell)}",
            column=column,
            row=row,
        )
    if not isinstance(value, list):
        raise ArenaFormatError(
            f"{expected}, got JSON {type(value).__name__} {excerpt(cell)}",
            column=column,
            row=row,
        )
    turns = []
    for i, item in enumerate(value):
        if item is None:
            turns.append("")
        elif isinstance(item, str):
            turns.append(clean_text(item))
        else:
            raise ArenaFormatError(
                f"{expected}, item {i} is {type(item).__name__} {excerpt(item)}",
                column=column,
                row=row,
            )
    return turns


def _quoted_list(names: Sequence[str]) -> str:
    quoted = [repr(n) for n in names]
    if len(quoted) == 1:
        return quoted[0]
    return ", ".join(quoted[:-1]) + " and " + quoted[-1]


def check_arena_frame(X: Any, owner: str, required: Sequence[str] = ARENA_COLUMNS) -> pd.DataFrame:
    """Check that ``X`` is a DataFrame (or mapping) of arena rows; return it.

    Parameters
    ----------
    X : pandas.DataFrame or mapping
        The rows.
    owner : str
        Who asks (a class or function name), for the error messages.
    required : sequence of str, default=ARENA_COLUMNS
        Columns that must be present, once each.

    Returns
    -------
    frame : pandas.DataFrame
        ``X`` itself, or a frame built from a mapping.

    Raises
    ------
    ValueError
        Naming ``owner``, the missing (or repeated) columns and the columns
        found.

    Examples
    --------
    >>> check_arena_frame({"prompt": ['["Hi"]']}, "me", required=("prompt",)).shape
    (1, 1)
    """
    if isinstance(X, str):
        raise ValueError(
            f"A pandas DataFrame with columns {_quoted_list(required)} expected, "
            "string object received."
        )
    if isinstance(X, Mapping) and not isinstance(X, pd.DataFrame):
        X = pd.DataFrame(dict(X))
    if not isinstance(X, pd.DataFrame):
        raise ValueError(
            f"A pandas DataFrame with columns {_quoted_list(required)} expected, "
            f"got {type(X).__name__}."
        )
    missing = [c for c in required if c not in X.columns]
    if missing:
        raise ValueError(
            f"Missing column(s) {', '.join(repr(c) for c in missing)}: "
            f"{owner} needs {_quoted_list(required)}; got columns "
            f"{list(map(str, X.columns))}."
        )
    repeated = [c for c in required if int((X.columns == c).sum()) > 1]
    if repeated:
        raise ValueError(
            f"Duplicate column(s) {', '.join(repr(c) for c in repeated)}: "
            f"{owner} needs exactly one column each of {_quoted_list(required)}; "
            f"got columns {list(map(str, X.columns))}."
        )
    return X


def check_labels(y: Any) -> np.ndarray:
    """Check labels in {0: model_a wins, 1: model_b wins, 2: tie}.

    Parameters
    ----------
    y : array-like of shape (n_rows,)

    Returns
    -------
    y : ndarray of shape (n_rows,), dtype=int64

    Raises
    ------
    ValueError
        When ``y`` is not 1-D, or a label is not 0, 1 or 2 (naming its
        position).

    Examples
    --------
    >>> check_labels([0, 2, 1])
    array([0, 2, 1])
    """
    values = np.asarray(y)
    if values.ndim != 1:
        raise ValueError(
            f"y must be 1-D labels 0 (model_a wins), 1 (model_b wins), 2 (tie); got "
            f"an array of shape {values.shape}."
        )
    ok = np.zeros(values.shape, dtype=bool)
    for label in SWAPPED_LABEL:
        ok |= values == label
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        bad = values[i].item() if isinstance(values[i], np.generic) else values[i]
        raise ValueError(
            f"y at position {i}: expected 0 (model_a wins), 1 (model_b wins) or 2 "
            f"(tie), got {bad!r}."
        )
    return values.astype(np.int64)


def swap_labels(y: Any) -> np.ndarray:
    """Labels of the swapped rows: 0 (model_a wins) and 1 (model_b wins) exchange.

    Parameters
    ----------
    y : array-like of shape (n_rows,)
        Labels in {0: model_a wins, 1: model_b wins, 2: tie}.

    Returns
    -------
    y_swapped : ndarray of shape (n_rows,), dtype=int64
        ``1 - y`` where ``y`` is 0 or 1; 2 stays 2.

    Raises
    ------
    ValueError
        When a label is not 0, 1 or 2 (naming its position).

    Examples
    --------
    >>> swap_labels([0, 1, 2, 0])
    array([1, 0, 2, 1])
    """
    y = check_labels(y)
    return np.where(y == 2, 2, 1 - y)


def check_texts(X: Any, owner: str = "GemmaEmbedder") -> tuple[list[str], int, list[str]]:
    """Check texts and flatten them row by row; return them, the columns, their names.

    One text per row (list, 1-D array, Series, one-column DataFrame) or several
    (a 2-D array or a DataFrame of texts, e.g. ``layout="pair"``'s two answers).

    Raises
    ------
    ValueError
        For a bare string (scikit-learn's wording), raw arena rows, an array
        of another dimension, or a cell that is not a ``str`` (naming its
        column and row); ``owner`` names who expects the texts.

    Examples
    --------
    >>> check_texts(["a", "b"])
    (['a', 'b'], 1, ['text'])
    """
    if isinstance(X, str):
        raise ValueError("Iterable over raw text documents expected, string object received.")
    names: list[str] | None = None
    if isinstance(X, pd.Series):
        X = X.to_frame(name=X.name if X.name is not None else "text")
    if isinstance(X, pd.DataFrame):
        if {"response_a", "response_b"} <= set(map(str, X.columns)):
            raise ValueError(
                f"{owner} expects texts, got raw arena rows (columns "
                f"{list(map(str, X.columns))}); use ArenaTextFormatter first to "
                "turn them into texts."
            )
        names = [str(c) for c in X.columns]
        labels = X.index.tolist()
        grid = X.to_numpy(dtype=object)
    else:
        if not isinstance(X, np.ndarray):
            try:
                items = list(X)
            except TypeError:
                raise ValueError(
                    "Iterable over raw text documents expected, "
                    f"{type(X).__name__} object received."
                ) from None
            X = np.empty(len(items), dtype=object)
            for i, item in enumerate(items):
                X[i] = item
            widths = {len(i) if isinstance(i, (list, tuple)) else -1 for i in items}
            if len(widths) == 1 and min(widths) > 0:
                X = np.array(items, dtype=object)  # rows of several texts
        if X.ndim not in (1, 2):
            raise ValueError(
                f"{owner} expects texts: a list, a 1-D array or Series, or a "
                f"2-D array or DataFrame of texts; got an array of shape {X.shape}."
            )
        grid = X.astype(object, copy=False)
        labels = list(range(len(grid)))
    if grid.ndim == 1:
        grid = grid.reshape(-1, 1)
    if names is None:
        names = ["text"] if grid.shape[1] == 1 else [f"text{c}" for c in range(grid.shape[1])]
    if grid.shape[1] == 0:
        raise ValueError(f"{owner} expects texts; got an input with 0 columns.")
    for r, label in enumerate(labels):
        for c, name in enumerate(names):
            value = grid[r, c]
            if not isinstance(value, str):
                raise ValueError(
                    f"{name} at row {label!r}: expected str, got "
                    f"{type(value).__name__} {repr(value)[:60]}"
                )
    return grid.ravel().tolist(), grid.shape[1], names
