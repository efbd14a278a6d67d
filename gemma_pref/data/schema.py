# SPDX-License-Identifier: Apache-2.0
"""The arena data schema: columns, labels, the rule of a frame's cells and the checks (no torch).

Everything that knows what a Kaggle "LMSYS - Chatbot Arena" row looks like
lives here: the column names, the labels and how swapping the answers maps
them, the one rule by which a frame's text cells (JSON lists of turns, or
plain strings of one turn) are read (``cell_format``), and the checks of a
frame of rows and of a label vector. Every other module imports these names
from here. How one cell is read by that rule (``parse_turns``) and the
helpers that name a cell in messages live in ``gemma_pref.data._cells``,
which this module builds on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import ArenaFormatError

# excerpt, clean_text, is_missing, looks_like_json_list, parse_turns, report_missing and
# where moved to ._cells; they stay importable from here for 0.1's gemma_pref.schema.
from ._cells import (
    JSON_LIST_START,
    clean_text,  # noqa: F401
    excerpt,
    is_missing,
    looks_like_json_list,  # noqa: F401
    parse_turns,
    plain_value,
    report_missing,
    where,
)

__all__ = [
    "ARENA_COLUMNS",
    "CELLS_ATTR",
    "CELL_FORMATS",
    "CLASS_NAMES",
    "SWAPPED_LABEL",
    "SWAP_COLUMN_PAIRS",
    "WINNER_COLUMNS",
    "check_arena_frame",
    "check_labels",
    "check_texts",
    "read_turns",
    "resolve_cell_format",
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

#: How the text cells of a frame are read: the ``cell_format`` parameter of
#: every estimator and function that parses them.
CELL_FORMATS: dict[str, str] = {
    "auto": "the frame's mark (set by read_preferences), else 'json' when every "
    "non-missing cell is a JSON list of turns and 'text' when none is; a frame with "
    "both kinds is refused",
    "json": "every cell is a JSON list of turns (the Kaggle LMSYS files)",
    "text": "every cell is one turn of plain text, kept verbatim (the WSDM Cup files)",
}
#: The key of ``frame.attrs`` that says how a frame's text cells are encoded
#: (``"json"`` or ``"text"``); :func:`~gemma_pref.read_preferences` sets it.
CELLS_ATTR = "gemma_pref_cells"


def _check_cell_format(cell_format: Any, allowed: Sequence[str]) -> str:
    if cell_format not in allowed:
        raise ValueError(
            f"cell_format must be one of {', '.join(map(repr, allowed))}; got {cell_format!r}."
        )
    return str(cell_format)


def resolve_cell_format(
    frame: pd.DataFrame,
    cell_format: str = "auto",
    columns: Sequence[str] = ARENA_COLUMNS,
    *,
    settle: str = "cell_format='text' (each cell one turn of plain text, verbatim) or "
    "cell_format='json' (each cell a JSON list of turns)",
) -> str:
    """The one rule, ``"json"`` or ``"text"``, by which a frame's text cells are read.

    An explicit ``cell_format`` is returned as it is. ``"auto"`` follows the
    frame's mark (``frame.attrs["gemma_pref_cells"]``, :data:`CELLS_ATTR`,
    set by :func:`~gemma_pref.read_preferences`); without one it looks at
    every non-missing cell of ``columns``: ``"json"`` when each is a list or
    a string that starts like a JSON list of turns
    (:func:`looks_like_json_list`), ``"text"`` when none is. A frame with
    both kinds is ambiguous (a plain answer that happens to look like a JSON
    list, or a file that mixes encodings) and is refused.

    Parameters
    ----------
    frame : pandas.DataFrame
        The rows.
    cell_format : {"auto", "json", "text"}, default="auto"
    columns : sequence of str, default=ARENA_COLUMNS
        The text columns read by one rule.
    settle : str, default="cell_format='text' (...) or cell_format='json' (...)"
        The parameters that settle an ambiguity, as the caller's user passes
        them (named in the error).

    Returns
    -------
    cell_format : {"json", "text"}

    Raises
    ------
    ArenaFormatError
        For an ambiguous frame, naming the first rows of the smaller kind, an
        excerpt of each, the counts of both kinds and ``settle``.

    Examples
    --------
    >>> df = pd.DataFrame({"prompt": ["Fruit?"], "response_a": ['["apple", "pear"]'],
    ...                    "response_b": ["Plums."]})
    >>> resolve_cell_format(df)
    Traceback (most recent call last):
    ...
    gemma_pref.exceptions.ArenaFormatError: ambiguous text cells: 1 cell starts like a JSON list ...
    >>> resolve_cell_format(df, "text")
    'text'
    """
    if cell_format != "auto":
        return _check_cell_format(cell_format, ("auto", "json", "text"))
    marked = frame.attrs.get(CELLS_ATTR)
    if marked in ("json", "text"):
        return str(marked)
    json_cells: list[tuple[str, int, Any]] = []
    text_cells: list[tuple[str, int, Any]] = []
    for name in columns:
        for i, cell in enumerate(frame[name].tolist()):
            if isinstance(cell, str):
                kind = json_cells if JSON_LIST_START.match(cell) else text_cells
                kind.append((name, i, cell))
            elif isinstance(cell, (list, tuple, np.ndarray)):
                json_cells.append((name, i, cell))
    if json_cells and text_cells:
        few, many = sorted((json_cells, text_cells), key=len)
        shown = "; ".join(
            f"{name} at {where(frame, i)}: {excerpt(cell, 40)}" for name, i, cell in few[:3]
        )
        n_json, n_text = len(json_cells), len(text_cells)
        raise ArenaFormatError(
            f"ambiguous text cells: {n_json} cell{'s start' if n_json > 1 else ' starts'} "
            f"like a JSON list of turns and {n_text} {'do' if n_text > 1 else 'does'} not "
            f"({'those that do' if few is json_cells else 'those that do not'}: {shown}"
            f"{'; ...' if len(few) > 3 else ''}). One rule reads every cell of "
            f"{_quoted_list(list(columns))}: pass {settle}.",
            column=few[0][0],
            row=plain_value(frame.index[few[0][1]]),
        )
    return "json" if json_cells else "text"


def read_turns(
    X: Any,
    owner: str,
    cell_format: str = "auto",
    columns: Sequence[str] = ARENA_COLUMNS,
) -> tuple[pd.DataFrame, dict[str, list[list[str]]]]:
    """Check arena rows and parse their text columns by one rule.

    Parameters
    ----------
    X : pandas.DataFrame or mapping
        The rows.
    owner : str
        Who reads them (a class or function name), for error messages.
    cell_format : {"auto", "json", "text"}, default="auto"
        The rule (:func:`resolve_cell_format`).
    columns : sequence of str, default=ARENA_COLUMNS

    Returns
    -------
    frame : pandas.DataFrame
    turns : dict of str to list of list of str
        The turns of each cell, per column, in row order.

    Warns
    -----
    MissingCellsWarning
        When cells are missing (:func:`report_missing`).

    Examples
    --------
    >>> _, turns = read_turns({"prompt": ["Hi"], "response_a": ["Hey"],
    ...                        "response_b": ['["x"]']}, "me", "text")
    >>> turns["response_b"]
    [['["x"]']]
    """
    frame = check_arena_frame(X, owner, required=columns)
    rule = resolve_cell_format(frame, cell_format, columns)
    out: dict[str, list[list[str]]] = {}
    missing: dict[str, list[int]] = {}
    labels = frame.index.tolist()
    for name in columns:
        cells = frame[name].tolist()
        parsed: list[list[str]] = []
        for i, cell in enumerate(cells):
            if is_missing(cell):
                missing.setdefault(name, []).append(i)
                parsed.append([])
            else:
                parsed.append(parse_turns(cell, rule, column=name, row=labels[i]))
        out[name] = parsed
    report_missing(frame, missing)
    return frame, out


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
        When ``y`` is not 1-D, holds booleans, or a label is not 0, 1 or 2
        (naming its position).

    Examples
    --------
    >>> check_labels([0, 2, 1])
    array([0, 2, 1])
    """
    values = np.asarray(y)
    # a list [True, 0] becomes an int array: look at the items themselves
    items = values.ravel() if values.dtype in (bool, object) else y
    if isinstance(items, (list, tuple, np.ndarray)) and any(
        isinstance(v, (bool, np.bool_)) for v in items
    ):
        raise ValueError(
            "y holds booleans; expected labels 0 (model_a wins), 1 (model_b wins), 2 "
            "(tie): a boolean does not say which answer won. Map it to these labels "
            "(e.g. y = np.where(a_won, 0, 1))."
        )
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
